"""Turn an arbitrary image file into an MNIST-style 28x28 digit.

The MNIST digits were made from scanned handwriting: the ink was size-normalised
to fit a 20x20 box keeping its aspect ratio (with anti-aliasing, hence grey
levels), then placed in a 28x28 field so that its centre of mass sits at the
centre of the field. :func:`mnist_style` repeats those steps on any picture of a
single digit, so that a model trained on MNIST sees what it was trained on:

1. grayscale in [0, 1] (transparent pixels are composited onto a background that
   contrasts with the ink);
2. invert when the background (the median of the border pixels) is light, so the
   ink is bright on black like MNIST;
3. subtract the background level, stretch the ink to full contrast and erase
   specks of dust (blobs holding under ``speck_fraction`` of the ink);
4. find the bounding box of the ink: first the pixels above ``ink_threshold``,
   then each edge refined to sub-pixel precision where the ink falls to half the
   level found just inside it (for an anti-aliased picture of a pixel grid, that is
   the boundary of the outermost ink pixel, so a re-rendered MNIST digit keeps its
   original framing);
5. resample that box so its longest side is ``box_size`` pixels, keeping the aspect
   ratio, with Pillow's Lanczos filter (anti-aliased when shrinking) in float32;
6. paste into a ``canvas_size`` square shifted by whole pixels so that the centre
   of mass (``scipy.ndimage.center_of_mass``) lands on pixel ``canvas_size // 2``
   in both axes, which is where the MNIST digits have theirs (mean 14.0, 14.0);
7. quantise to uint8 like the IDX files.

The model's standardisation is applied afterwards by ``tasks.data.prepare.prepare_images``.
This module is pure: Pillow, numpy and scipy, no Prefect.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from nn.errors import ConfigError
from tasks.errors import ImageError, NoInkError
from tasks.images.reading import image_extensions, load_grayscale

__all__ = [
    "ImageError",
    "MnistStyle",
    "NoInkError",
    "image_extensions",
    "load_grayscale",
    "mnist_style",
    "preprocess_file",
]


@dataclass(frozen=True)
class MnistStyle:
    """Settings of the MNIST-style normalisation.

    Parameters
    ----------
    box_size:
        Length in pixels of the longest side of the ink after resizing (MNIST: 20).
    canvas_size:
        Side of the square output image in pixels (MNIST: 28); at least ``box_size``.
    ink_threshold:
        Level in (0, 1) above which a pixel of the contrast-stretched image counts as
        ink for the first, whole-pixel estimate of the bounding box.
    min_contrast:
        Smallest difference in (0, 1) between the brightest ink and the background
        for the image not to be considered blank.
    speck_fraction:
        Blobs of ink holding less than this fraction, in [0, 0.5), of all the ink are
        dust or noise and are erased before framing; 0 keeps everything.
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
    """Normalise one grayscale picture of a digit the way MNIST digits were made.

    Parameters
    ----------
    gray:
        (height, width) float array in [0, 1], any polarity (dark ink on light paper
        or light ink on dark).
    settings:
        Box, canvas and thresholds; ``MnistStyle()`` (20 in 28, MNIST) by default.
    source:
        Name of the image for error messages (usually its file path).

    Returns
    -------
    numpy.ndarray
        (canvas_size, canvas_size) uint8, ink bright on black, centred by mass.

    Raises
    ------
    NoInkError
        When the image is uniform, i.e. no ink stands out from the background.
    ImageError
        When ``gray`` is not a non-empty 2-D array.
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

    labels, n = ndimage.label(ink > s.ink_threshold, structure=np.ones((3, 3), dtype=bool))
    if n <= 1 or s.speck_fraction == 0.0:
        return ink
    mass = ndimage.sum_labels(ink, labels, index=np.arange(1, n + 1))
    small = np.flatnonzero(mass < s.speck_fraction * mass.sum()) + 1
    if small.size == 0:
        return ink
    erase = ndimage.binary_dilation(np.isin(labels, small), structure=np.ones((3, 3), dtype=bool))
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
    """Start and end (pixel-edge coordinates) of the ink along one axis.

    Parameters
    ----------
    profile:
        (n,) maximum of the contrast-stretched ink across the other axis, in [0, 1].
    threshold:
        Level above which a pixel counts as ink for the first, whole-pixel estimate.
    box:
        Output size of the longest side, to estimate how many input pixels make one
        output pixel (the reach of the sub-pixel refinement).
    """
    above = np.flatnonzero(profile > threshold)
    first, last = int(above[0]), int(above[-1])
    reach = max(1, math.ceil((last - first + 1) / box))
    start = _refined_start(profile, first, reach)
    end = profile.size - _refined_start(profile[::-1], profile.size - 1 - last, reach)
    return start, max(end, start + 1e-6)


def _resize_box(ink: np.ndarray, bounds: tuple[float, float, float, float], box: int) -> np.ndarray:
    """Resample the ink inside ``bounds`` so that its longest side becomes ``box`` pixels.

    Parameters
    ----------
    ink:
        (h, w) float64 in [0, 1], background 0.
    bounds:
        ``(top, bottom, left, right)`` of the ink in pixel-edge coordinates.
    box:
        Output length of the longest side; the other keeps the aspect ratio (at least 1).

    Returns
    -------
    numpy.ndarray
        (rows, cols) float64 in [0, 1] with ``max(rows, cols) == box``. Lanczos resampling
        (anti-aliased when shrinking) of a source box with the same scale on both axes,
        centred on the ink.
    """
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

    Raises
    ------
    ImageError
        Missing file, not an image, or no pixels.
    NoInkError
        The image is blank.
    """
    return mnist_style(load_grayscale(path), settings, source=str(path))
