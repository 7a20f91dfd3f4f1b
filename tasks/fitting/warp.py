"""Resampling of image batches: affine maps with elastic fields, and random erasing.

The vectorised geometry behind :mod:`tasks.fitting.augment` (whose docstring gives the
notation): all images of a batch resampled at once, buffers reused between minibatches.
Elastic fields come from a :class:`FieldBank`, smoothed once and cut per image.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from nn.errors import ConfigError

_MAX_WARP_BATCH = 4096


def smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    """``(size, size)`` float32 matrix ``G`` with ``G @ v == gaussian_filter1d(v, sigma)``."""
    from scipy.ndimage import gaussian_filter1d  # here: only elastic augmentation needs scipy

    eye = np.eye(size, dtype=np.float64)
    return gaussian_filter1d(eye, sigma, axis=0, mode="reflect").astype(np.float32)


class Workspace:
    """Reusable float32 buffers for :func:`elastic_field` and :func:`warp` (fresh
    temporaries per minibatch cost more than the arithmetic). Not thread-safe."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}
        self._index = np.empty(0, dtype=np.intp)

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 buffer of ``shape`` (contents undefined), grown on demand."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, dtype=np.float32)
        return buffer[:size].reshape(shape)

    def index(self, shape: tuple[int, ...]) -> np.ndarray:
        """An integer buffer of ``shape`` for gather indices."""
        size = math.prod(shape)
        if self._index.size < size:
            self._index = np.empty(size, dtype=np.intp)
        return self._index[:size].reshape(shape)


def elastic_field(
    n: int,
    shape: tuple[int, int],
    alpha: float,
    sigma: float,
    rng: np.random.Generator,
    workspace: Workspace | None = None,
) -> np.ndarray:
    """Random smooth displacement fields, ``(n, 2, H, W)`` float32 (rows, then columns).

    ``alpha * gaussian_filter(U, sigma=(0, 0, sigma, sigma))`` (``mode="reflect"``, as two
    small matrix products) for ``U`` uniform in ``[-1, 1]``, drawn on every
    :func:`noise_stride`-th row and column only (zero elsewhere, amplitude restored): a
    Gaussian that wide averages over many samples either way. With a ``workspace`` the
    result lives in one of its buffers (valid until the next call).
    """
    ws = workspace if workspace is not None else Workspace()
    height, width = shape
    stride = noise_stride(sigma)
    noise = ws.get("noise", (n * 2, -(-height // stride), -(-width // stride)))
    rng.random(out=noise, dtype=np.float32)
    noise *= 2.0
    noise -= 1.0
    g_rows, g_cols_t = _smoothing_operators(height, width, float(alpha), float(sigma))
    # Stacked small products (one per field) are much faster here than one tall
    # (2nH, W) @ (W, W) product, which OpenBLAS handles poorly.
    tmp = ws.get("tmp", (n * 2, noise.shape[1], width))
    np.matmul(noise, g_cols_t, out=tmp)  # smooth along columns
    out = ws.get("field", (n * 2, height, width))
    np.matmul(g_rows, tmp, out=out)  # then along rows
    return out.reshape(n, 2, height, width)


@functools.lru_cache(maxsize=8)
def _smoothing_operators(
    height: int, width: int, alpha: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """The (read-only) matrices of :func:`elastic_field`, built once per setting, not per batch."""
    stride = noise_stride(sigma)
    # G @ U with U zero off the grid is G[:, ::stride] @ U[::stride].
    g_rows = smoothing_matrix(height, sigma)[:, ::stride] * np.float32(alpha * stride)
    g_cols_t = np.ascontiguousarray(smoothing_matrix(width, sigma)[:, ::stride].T)
    g_rows.flags.writeable = g_cols_t.flags.writeable = False
    return g_rows, g_cols_t


def noise_stride(sigma: float) -> int:
    """Spacing of the noise samples of :func:`elastic_field`: 2 when ``sigma >= 2``, else 1."""
    return 2 if sigma >= 2.0 else 1


class FieldBank:
    """Elastic fields for a batch at the cost of a copy: smoothed once, then reused.

    Holds ``size`` fields of :func:`elastic_field` (``alpha``, ``sigma``) drawn on images
    ``2 * margin`` pixels wider and taller than ``shape``, from a generator of its own
    seeded with ``seed``: the bank depends on its settings only, so a training run
    resumed from a checkpoint sees the same bank. :meth:`draw` gives each image the
    window of a random field at a random offset, negated or not (smoothed uniform noise
    is as likely as its negative): 512 fields give 296,000 windows, each a copy where a
    new field costs noise, two products and their buffers (``bench/augment_speed.py`` times
    the whole augmentation).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        alpha: float,
        sigma: float,
        *,
        size: int = 512,
        margin: int = 8,
        seed: int = 0,
    ) -> None:
        height, width = shape
        self.shape = (int(height), int(width))
        self.size, self.margin = int(size), int(margin)
        big = (height + 2 * margin, width + 2 * margin)
        fields = elastic_field(size, big, alpha, sigma, np.random.default_rng(seed)).copy()
        fields.flags.writeable = False
        # (size, 2, 2 * margin + 1, 2 * margin + 1, H, W): every window, without a copy
        self._windows = np.lib.stride_tricks.sliding_window_view(fields, shape, axis=(2, 3))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, 2, H, W)`` float32 displacement fields (rows, then columns), a new array."""
        field = rng.integers(0, self.size, n)
        top, left = rng.integers(0, 2 * self.margin + 1, (2, n))
        out = self._windows[field, :, top, left]
        out *= np.where(rng.random(n) < 0.5, np.float32(-1), np.float32(1))[:, None, None, None]
        return out


def warp(
    images: np.ndarray,
    matrices: np.ndarray,
    shifts: np.ndarray,
    displacement: np.ndarray | None = None,
    fill: float | np.ndarray | None = None,
    workspace: Workspace | None = None,
    order: int = 1,
) -> np.ndarray:
    """Resample every image at its own source coordinates.

    Parameters
    ----------
    images:
        ``(n, H, W)`` float32.
    matrices, shifts:
        ``(n, 2, 2)`` and ``(n, 2)``: ``source = c + A (p - c) - t`` (see the module docstring).
    displacement:
        Optional ``(n, 2, H, W)`` elastic field added to the source coordinates.
    fill:
        Background value: a number, ``(n,)`` values, or ``None`` for each image's minimum.
    workspace:
        Buffers to reuse between calls (see :class:`Workspace`).
    order:
        1 for bilinear interpolation, 0 for the nearest pixel (exact, and four times
        cheaper, for whole-pixel shifts and flips).

    Returns
    -------
    ``(n, H, W)`` float32, a new array.
    """
    n, height, width = images.shape
    if order not in (0, 1):
        raise ConfigError(f"order={order!r} must be 0 (nearest) or 1 (bilinear)")
    if n > _MAX_WARP_BATCH:  # keeps the float32 gather indices exact
        parts = [
            warp(
                images[i : i + _MAX_WARP_BATCH],
                matrices[i : i + _MAX_WARP_BATCH],
                shifts[i : i + _MAX_WARP_BATCH],
                None if displacement is None else displacement[i : i + _MAX_WARP_BATCH],
                fill if fill is None or np.ndim(fill) == 0 else fill[i : i + _MAX_WARP_BATCH],
                workspace,
                order,
            )
            for i in range(0, n, _MAX_WARP_BATCH)
        ]
        return np.concatenate(parts)
    ws = workspace if workspace is not None else Workspace()
    if fill is None:
        fill_values = images.reshape(n, -1).min(axis=1)
    else:
        fill_values = np.broadcast_to(np.asarray(fill, dtype=np.float32), (n,))
    # Pad with one row/column of background before and two after: coordinates are
    # clipped to [-1, H] so that every neighbour of a point outside the image is fill.
    padded = ws.get("padded", (n, height + 3, width + 3))
    padded[...] = fill_values[:, None, None]
    padded[:, 1 : height + 1, 1 : width + 1] = images
    rows = (np.arange(height, dtype=np.float32) - (height - 1) / 2.0)[None, :, None]
    cols = (np.arange(width, dtype=np.float32) - (width - 1) / 2.0)[None, None, :]
    coords = []
    for axis, size in ((0, height), (1, width)):
        centre = (size - 1) / 2.0
        a = matrices[:, axis].astype(np.float32)
        offset = np.float32(centre + 1.0) - shifts[:, axis].astype(np.float32)
        src = ws.get("src_r" if axis == 0 else "src_c", (n, height, width))
        np.add(
            a[:, 0, None, None] * rows + offset[:, None, None], a[:, 1, None, None] * cols, out=src
        )
        if displacement is not None:
            src += displacement[:, axis]
        np.clip(src, 0.0, size + 1.0, out=src)
        low = ws.get("floor_r" if axis == 0 else "floor_c", (n, height, width))
        if order == 0:
            np.rint(src, out=low)
        else:
            np.floor(src, out=low)
            src -= low  # now the fractional part
        coords.append((low, src))
    (row0, frac_r), (col0, frac_c) = coords
    stride = width + 3
    index = ws.index((n, height, width))
    row0 *= stride
    row0 += col0
    row0 += (np.arange(n, dtype=np.float32) * ((height + 3) * stride))[:, None, None]
    np.copyto(index, row0, casting="unsafe")
    flat = padded.reshape(-1)
    if order == 0:
        return np.take(flat, index, mode="clip")
    v00, v01 = ws.get("v00", index.shape), ws.get("v01", index.shape)
    v10, v11 = ws.get("v10", index.shape), ws.get("v11", index.shape)
    np.take(flat, index, out=v00, mode="clip")
    np.take(flat[1:], index, out=v01, mode="clip")
    np.take(flat[stride:], index, out=v10, mode="clip")
    np.take(flat[stride + 1 :], index, out=v11, mode="clip")
    v01 -= v00  # top = v00 + frac_c * (v01 - v00)
    v01 *= frac_c
    v01 += v00
    v11 -= v10  # bottom = v10 + frac_c * (v11 - v10)
    v11 *= frac_c
    v11 += v10
    v11 -= v01  # out = top + frac_r * (bottom - top)
    v11 *= frac_r
    return np.add(v01, v11)


def erase_rectangles(
    images: np.ndarray, probability: float, fill: float | np.ndarray, rng: np.random.Generator
) -> None:
    """Random erasing, in place: with ``probability`` per image, one rectangle becomes ``fill``.

    ``images`` is ``(n, H, W)`` float32 and ``fill`` a number or ``(n,)`` values.
    The rectangle covers a uniform 2%-20% of the image with a log-uniform aspect
    ratio in [1/3, 3], at a uniform position where it fits.
    """
    n, height, width = images.shape
    chosen = rng.random(n) < probability
    area = rng.uniform(0.02, 0.2, n) * height * width
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3), n))
    rect_h = np.clip(np.rint(np.sqrt(area * aspect)), 1, height).astype(np.int64)
    rect_w = np.clip(np.rint(np.sqrt(area / aspect)), 1, width).astype(np.int64)
    top = (rng.random(n) * (height - rect_h + 1)).astype(np.int64)
    left = (rng.random(n) * (width - rect_w + 1)).astype(np.int64)
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    inside = (
        chosen[:, None, None]
        & (rows >= top[:, None, None])
        & (rows < (top + rect_h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + rect_w)[:, None, None])
    )
    values = np.broadcast_to(np.asarray(fill, dtype=np.float32).reshape(-1, 1, 1), images.shape)
    np.copyto(images, values, where=inside)
