"""Turn an arbitrary image file into an MNIST-style 28x28 digit.

The MNIST digits were scanned ink size-normalised into a 20x20 box (aspect kept,
anti-aliased) and placed in a 28x28 field with the centre of mass at its centre.
:func:`mnist_style` repeats that on any picture of one digit, so a model trained on MNIST
sees what it was trained on: grayscale, inverted when the background (median of the
border) is light, contrast-stretched with specks of dust erased, the ink's bounding box
refined to sub-pixel edges (so a re-rendered MNIST digit keeps its framing), resampled
with Lanczos, pasted centred by mass, quantised to uint8. Pure: no Prefect.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from nn.errors import ConfigError
from tasks.errors import ImageError, NoInkError
from tasks.images.reading import decode_grayscale, image_extensions, load_grayscale

__all__ = [
    "ImageError",
    "MnistStyle",
    "NoInkError",
    "image_extensions",
    "load_grayscale",
    "mnist_style",
    "preprocess_bytes",
    "preprocess_file",
]


@dataclass(frozen=True)
class MnistStyle:
    """Settings of the MNIST-style normalisation, in pixels and levels in (0, 1).

    ``box_size``: the ink's longest side after resizing (MNIST: 20); ``canvas_size``: side
    of the output (MNIST: 28, >= ``box_size``); ``ink_threshold``: level counting as ink
    for the whole-pixel bounding box; ``min_contrast``: smallest ink-to-background
    difference of a non-blank image; ``speck_fraction``: blobs under this share of the ink,
    in [0, 0.5), are erased as dust (0 keeps everything).
    """

    box_size: int = 20
    canvas_size: int = 28
    ink_threshold: float = 0.1
    min_contrast: float = 0.1
    speck_fraction: float = 0.01

    def __post_init__(self) -> None:
        if not 1 <= self.box_size <= 1024:
            raise ConfigError(f"box_size must be in [1, 1024], got {self.box_size}")
        if not self.box_size <= self.canvas_size <= 4096:
            raise ConfigError(
                f"canvas_size must be in [box_size={self.box_size}, 4096], got {self.canvas_size}"
            )
        if not 0.0 < self.ink_threshold < 1.0:
            raise ConfigError(f"ink_threshold must be in (0, 1), got {self.ink_threshold}")
        if not 0.0 < self.min_contrast < 1.0:
            raise ConfigError(f"min_contrast must be in (0, 1), got {self.min_contrast}")
        if not 0.0 <= self.speck_fraction < 0.5:
            raise ConfigError(f"speck_fraction must be in [0, 0.5), got {self.speck_fraction}")


def _border(gray: np.ndarray) -> np.ndarray:
    """Return the pixels on the four edges of a (h, w) image, as a 1-D array."""
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def mnist_style(
    gray: np.ndarray, settings: MnistStyle | None = None, *, source: str = "image"
) -> np.ndarray:
    """Normalise a ``(height, width)`` grayscale picture in [0, 1] (either polarity) of a
    digit as MNIST digits were made; uint8 ``(canvas_size, canvas_size)``, ink bright on
    black, centred by mass. ``settings`` default to ``MnistStyle()``; ``source`` names the
    image in messages.

    Raises NoInkError (no ink stands out from the background) or ImageError (``gray`` not
    a non-empty 2-D array).
    """
    s = settings or MnistStyle()
    img = np.asarray(gray, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ImageError(f"{source}: expected a non-empty 2-D grayscale array, got {img.shape}")
    if np.median(_border(img)) > 0.5:
        img = 1.0 - img
    background = float(np.median(_border(img)))
    contrast = float(img.max()) - background
    if contrast < s.min_contrast:
        raise NoInkError(
            f"{source}: no ink found, the image is blank (its brightest ink differs from "
            f"the background by {contrast:.3f} < min_contrast={s.min_contrast})"
        )
    ink = _drop_specks(np.clip((img - background) / contrast, 0.0, 1.0), s)
    top, bottom = _ink_extent(ink.max(axis=1), s.ink_threshold, s.box_size)
    left, right = _ink_extent(ink.max(axis=0), s.ink_threshold, s.box_size)
    glyph = _resize_box(ink, (top, bottom, left, right), s.box_size)
    return _paste_centred_by_mass(glyph, s.canvas_size)


def _drop_specks(ink: np.ndarray, s: MnistStyle) -> np.ndarray:
    """Erase blobs of ink holding less than ``s.speck_fraction`` of the total ink.

    ``ink`` is (h, w) in [0, 1]; blobs are 8-connected groups of pixels above
    ``s.ink_threshold``, each erased with a one-pixel margin (its anti-aliased rim) so
    that dust and sensor noise neither stretch the bounding box nor pull the centre of
    mass. Returns ``ink`` itself when nothing is erased.
    """
    from scipy import ndimage  # here: a command that prepares no image does not import it

    if s.speck_fraction == 0.0:
        return ink
    mask = ink > s.ink_threshold
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return ink
    window = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # blobs lie inside
    eight = np.ones((3, 3), dtype=bool)
    labels = np.zeros(ink.shape, dtype=np.int32)
    labels[window], n = ndimage.label(mask[window], structure=eight)
    if n <= 1:
        return ink
    mass = ndimage.sum_labels(ink, labels, index=np.arange(1, n + 1))
    small = np.flatnonzero(mass < s.speck_fraction * mass.sum()) + 1
    if small.size == 0:
        return ink
    erase = ndimage.binary_dilation(np.isin(labels, small), structure=eight)
    return np.where(erase & ~np.isin(labels, np.setdiff1d(np.arange(1, n + 1), small)), 0.0, ink)


def _refined_start(profile: np.ndarray, first: int, reach: int) -> float:
    """Sub-pixel position where the ink starts, searching around index ``first``.

    ``profile`` (n,) is the ink's maximum across the other axis, ``first`` the first index
    above the detection threshold and ``reach`` the size in pixels of one output pixel.
    The edge is where the profile crosses half the ink level found within ``reach``
    inside it: for an anti-aliased rendering of a pixel grid (any interpolating filter),
    that is where the boundary of the outermost ink pixel lies. Returns a position in
    pixel-edge coordinates (pixel ``i`` spans ``[i, i + 1)``).
    """
    half = float(profile[first : first + reach].max()) / 2.0
    i = first
    while i > max(0, first - reach) and profile[i - 1] > half:
        i -= 1
    while profile[i] <= half:
        i += 1
    if i > 0 and profile[i - 1] <= half < profile[i]:
        return i - 0.5 + (half - profile[i - 1]) / (profile[i] - profile[i - 1])
    return float(i)


def _ink_extent(profile: np.ndarray, threshold: float, box: int) -> tuple[float, float]:
    """Start and end (pixel-edge coordinates) of the ink along one axis, from ``profile``
    ``(n,)`` (the ink's maximum across the other axis), the ink ``threshold`` and the
    output ``box`` size (which sets the reach of the sub-pixel refinement)."""
    above = np.flatnonzero(profile > threshold)
    first, last = int(above[0]), int(above[-1])
    reach = max(1, math.ceil((last - first + 1) / box))
    start = _refined_start(profile, first, reach)
    end = profile.size - _refined_start(profile[::-1], profile.size - 1 - last, reach)
    return start, max(end, start + 1e-6)


def _resize_box(ink: np.ndarray, bounds: tuple[float, float, float, float], box: int) -> np.ndarray:
    """Resample the ``(h, w)`` ink in [0, 1] inside ``bounds`` (``(top, bottom, left,
    right)``, pixel-edge coordinates) with Lanczos, the same scale on both axes; float64
    ``(rows, cols)`` in [0, 1] with ``max(rows, cols) == box``."""
    top, bottom, left, right = bounds
    height, width = bottom - top, right - left
    scale = box / max(height, width)
    rows = max(1, min(box, round(height * scale)))
    cols = max(1, min(box, round(width * scale)))
    cy, cx = (top + bottom) / 2.0, (left + right) / 2.0
    half_h, half_w = rows / scale / 2.0, cols / scale / 2.0
    y0, x0 = math.floor(cy - half_h) - 1, math.floor(cx - half_w) - 1
    y1, x1 = math.ceil(cy + half_h) + 1, math.ceil(cx + half_w) + 1
    region = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    h, w = ink.shape
    r0, r1, c0, c1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    region[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0] = ink[r0:r1, c0:c1]
    source = (cx - half_w - x0, cy - half_h - y0, cx + half_w - x0, cy + half_h - y0)
    resized = Image.fromarray(region, mode="F").resize(
        (cols, rows), Image.Resampling.LANCZOS, box=source
    )
    return np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)


def _paste_centred_by_mass(glyph: np.ndarray, size: int) -> np.ndarray:
    """Paste (h, w) into a (size, size) uint8 canvas, centre of mass on pixel size // 2."""
    from scipy import ndimage

    cy, cx = ndimage.center_of_mass(glyph)
    centre = size // 2
    top = math.floor(centre - cy + 0.5)
    left = math.floor(centre - cx + 0.5)
    canvas = np.zeros((size, size), dtype=np.float64)
    h, w = glyph.shape
    r0, r1 = max(top, 0), min(top + h, size)
    c0, c1 = max(left, 0), min(left + w, size)
    canvas[r0:r1, c0:c1] = glyph[r0 - top : r1 - top, c0 - left : c1 - left]
    return np.rint(canvas * 255.0).astype(np.uint8)


def preprocess_file(path: str | os.PathLike[str], settings: MnistStyle | None = None) -> np.ndarray:
    """Read an image file and return its MNIST-style (28, 28) uint8 digit.

    Raises ImageError (missing file, not an image, no pixels) or NoInkError (blank).
    """
    return mnist_style(load_grayscale(path), settings, source=str(path))


def preprocess_bytes(
    data: bytes, settings: MnistStyle | None = None, *, name: str = "image"
) -> np.ndarray:
    """:func:`preprocess_file` of an image held in memory (an upload); ``name`` starts the
    error messages.

    Raises ImageError (empty, not an image, no pixels) or NoInkError (blank).
    """
    return mnist_style(decode_grayscale(data, name), settings, source=name)
