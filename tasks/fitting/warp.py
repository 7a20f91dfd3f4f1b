"""Resampling of image batches: affine maps with elastic fields, and random erasing.

The vectorised geometry behind :mod:`tasks.fitting.augment` (whose docstring gives the
notation): all images of a batch resampled at once, buffers reused between minibatches.
Training draws its distortions from a :class:`WarpBank`: the maps, the elastic fields
and where each output pixel reads (:class:`SamplePoints`) are computed once, and a
minibatch costs one gather per interpolation corner.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from nn.errors import ConfigError


def smoothing_matrix(size: int, sigma: float) -> np.ndarray:
    """``(size, size)`` float32 matrix ``G`` with ``G @ v == gaussian_filter1d(v, sigma)``."""
    from scipy.ndimage import gaussian_filter1d  # here: only elastic augmentation needs scipy

    eye = np.eye(size, dtype=np.float64)
    return gaussian_filter1d(eye, sigma, axis=0, mode="reflect").astype(np.float32)


class Workspace:
    """Reusable buffers for :func:`elastic_field` and :func:`resample` (fresh temporaries
    per minibatch cost more than the arithmetic). Not thread-safe."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        """A buffer of ``shape`` and ``dtype`` (contents undefined), grown on demand."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


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


class SamplePoints(NamedTuple):
    """Where every output pixel of ``n`` images reads its value (:func:`sample_points`).

    ``offset`` (n, H * W) int32: the flat position of the pixel's top-left source neighbour
    in its image padded by :func:`resample` (``(H + 3, W + 3)``: one row and column of
    background before, two after); ``frac_r``, ``frac_c`` (n, H * W) float32: how far the
    source point lies past that neighbour along rows and columns, in ``[0, 1)`` (zero for
    the nearest pixel).
    """

    offset: np.ndarray
    frac_r: np.ndarray
    frac_c: np.ndarray


def sample_points(
    matrices: np.ndarray,
    shifts: np.ndarray,
    displacement: np.ndarray | None,
    shape: tuple[int, int],
    order: int = 1,
) -> SamplePoints:
    """The source points of ``source = c + A (p - c) - t + d(p)`` for images of ``shape``.

    ``matrices`` (n, 2, 2), ``shifts`` (n, 2) and the optional ``displacement``
    (n, 2, H, W) are :func:`warp`'s; ``order`` 1 keeps the fractions for bilinear
    interpolation, 0 rounds to the nearest pixel. Points outside the image are clipped to
    the padding's first row or column, which holds the background.
    """
    if order not in (0, 1):
        raise ConfigError(f"order={order!r} must be 0 (nearest) or 1 (bilinear)")
    n = matrices.shape[0]
    height, width = shape
    rows = (np.arange(height, dtype=np.float32) - (height - 1) / 2.0)[None, :, None]
    cols = (np.arange(width, dtype=np.float32) - (width - 1) / 2.0)[None, None, :]
    lows, fracs = [], []
    for axis, size in ((0, height), (1, width)):
        a = matrices[:, axis].astype(np.float32)
        offset = np.float32((size - 1) / 2.0 + 1.0) - shifts[:, axis].astype(np.float32)
        src = a[:, 0, None, None] * rows + a[:, 1, None, None] * cols + offset[:, None, None]
        if displacement is not None:
            src += displacement[:, axis]
        np.clip(src, 0.0, size + 1.0, out=src)
        low = np.rint(src) if order == 0 else np.floor(src)
        lows.append(low)
        fracs.append((src - low if order else np.zeros_like(src)).reshape(n, -1))
    offset = (lows[0] * (width + 3) + lows[1]).astype(np.int32).reshape(n, -1)
    return SamplePoints(offset, fracs[0], fracs[1])


def resample(
    images: np.ndarray,
    points: SamplePoints,
    fill: float | np.ndarray | None = None,
    order: int = 1,
    workspace: Workspace | None = None,
) -> np.ndarray:
    """Read every image ``(n, H, W)`` float32 at its :class:`SamplePoints`.

    ``fill`` is the background: a number, ``(n,)`` values, or ``None`` for each image's
    minimum; ``order`` 1 interpolates bilinearly, 0 takes the nearest pixel. Returns
    ``(n, H, W)`` float32, a new array.
    """
    n, height, width = images.shape
    ws = workspace if workspace is not None else Workspace()
    if fill is None:
        fill_values = images.reshape(n, -1).min(axis=1)
    else:
        fill_values = np.broadcast_to(np.asarray(fill, dtype=np.float32), (n,))
    stride = width + 3
    padded = ws.get("padded", (n, height + 3, stride))
    padded[...] = fill_values[:, None, None]
    padded[:, 1 : height + 1, 1 : width + 1] = images
    index = ws.get("index", (n, height * width), np.int32)
    starts = np.arange(n, dtype=np.int32) * np.int32((height + 3) * stride)
    np.add(points.offset, starts[:, None], out=index)
    flat = padded.reshape(-1)
    if order == 0:
        return np.take(flat, index, mode="clip").reshape(n, height, width)
    v00, v01 = ws.get("v00", index.shape), ws.get("v01", index.shape)
    v10, v11 = ws.get("v10", index.shape), ws.get("v11", index.shape)
    np.take(flat, index, out=v00, mode="clip")
    np.take(flat[1:], index, out=v01, mode="clip")
    np.take(flat[stride:], index, out=v10, mode="clip")
    np.take(flat[stride + 1 :], index, out=v11, mode="clip")
    v01 -= v00  # top = v00 + frac_c * (v01 - v00)
    v01 *= points.frac_c
    v01 += v00
    v11 -= v10  # bottom = v10 + frac_c * (v11 - v10)
    v11 *= points.frac_c
    v11 += v10
    v11 -= v01  # out = top + frac_r * (bottom - top)
    v11 *= points.frac_r
    return np.add(v01, v11).reshape(n, height, width)


def warp(
    images: np.ndarray,
    matrices: np.ndarray,
    shifts: np.ndarray,
    displacement: np.ndarray | None = None,
    fill: float | np.ndarray | None = None,
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
    order:
        1 for bilinear interpolation, 0 for the nearest pixel (exact for whole-pixel
        shifts and flips).

    Returns
    -------
    ``(n, H, W)`` float32, a new array.
    """
    points = sample_points(matrices, shifts, displacement, images.shape[1:], order)
    return resample(images, points, fill, order)


class WarpBank:
    """Warps prepared once, dealt out at random: a batch's augmentation at the cost of a
    resampling.

    Holds the :class:`SamplePoints` of ``size`` warps (``(size, H * W)`` each, 12 bytes a
    pixel); :meth:`apply` gives every image of a batch one of them, drawn with the
    caller's generator, so an image meets a new distortion at every epoch while the
    geometry (affine maps, elastic fields, the source points) is paid for once.
    """

    def __init__(self, points: SamplePoints, order: int = 1) -> None:
        if order not in (0, 1):
            raise ConfigError(f"order={order!r} must be 0 (nearest) or 1 (bilinear)")
        self.points, self.order = points, order
        self.size = int(points.offset.shape[0])

    def apply(
        self,
        images: np.ndarray,
        rng: np.random.Generator,
        fill: float | np.ndarray | None = None,
        workspace: Workspace | None = None,
    ) -> np.ndarray:
        """``(n, H, W)`` float32 images, each warped by a random warp of the bank (a new array)."""
        ws = workspace if workspace is not None else Workspace()
        pick = rng.integers(0, self.size, images.shape[0])
        points = SamplePoints(
            *(
                np.take(
                    array, pick, 0, ws.get(name, (pick.size, array.shape[1]), array.dtype), "clip"
                )
                for name, array in zip(SamplePoints._fields, self.points, strict=True)
            )
        )
        return resample(images, points, fill, self.order, ws)


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
