"""Reading image files for prediction: bounded in size and memory, grayscale in [0, 1].

A hostile or just huge image must not exhaust memory: :func:`load_grayscale` refuses
images over :data:`MAX_PIXELS` (Pillow's decompression-bomb checks give the same error),
decodes JPEGs at a reduced scale, and reduces any image to :data:`WORK_SIDE` pixels on
its longest side right after decoding, before anything is converted to float. No Prefect.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tasks.errors import ImageError


def image_extensions() -> frozenset[str]:
    """Return the lower-case file extensions (with the dot) that Pillow can open."""
    return frozenset(ext.lower() for ext in Image.registered_extensions())


MAX_PIXELS = 40_000_000
"""Largest image, in pixels, that :func:`load_grayscale` decodes (a JPEG counts at the
reduced scale it is decoded at): bounds the memory one image takes."""

WORK_SIDE = 1024
"""Longest side, in pixels, an image is reduced to (by whole factors) right after decoding:
the digit ends up 20 pixels tall, so nothing is lost."""

_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transposition that shows the picture upright (as
``ImageOps.exif_transpose``, applied here to the reduced image)."""


def _too_large(name: str, width: int, height: int) -> ImageError:
    return ImageError(
        f"{name}: image of {width}x{height} = {width * height / 1e6:.1f} Mpx is larger than "
        f"the {MAX_PIXELS / 1e6:.0f} Mpx limit; scale it down first"
    )


def _open(source: Path | io.BytesIO, name: str) -> Image.Image:
    """Open ``source`` lazily (header only); Pillow's decompression-bomb checks become ours."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked below
            return Image.open(source)
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit: size in message
        sizes = re.findall(r"\((\d+) pixels\)", str(exc))
        pixels = int(sizes[0]) if sizes else 0
        raise ImageError(
            f"{name}: image of {pixels / 1e6:.1f} Mpx is larger than the "
            f"{MAX_PIXELS / 1e6:.0f} Mpx limit; scale it down first"
        ) from None
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image Pillow can read ({type(exc).__name__})") from exc
    except OSError as exc:
        raise ImageError(f"{name}: cannot open: {exc.strerror or exc}") from exc


def _reduce(img: Image.Image, side: int) -> Image.Image:
    """``img`` reduced by a whole factor so that its longest side is at most ``side``."""
    factor = math.ceil(max(img.size) / side)
    if factor <= 1:
        return img
    if img.mode.startswith("I;16"):  # modes reduce() lacks, to the smallest that keep them
        img = img.convert("I")
    elif img.mode in ("1", "P", "PA"):
        alpha = img.mode == "PA" or "transparency" in img.info
        img = img.convert("LA" if alpha else "L")
    return img.reduce(factor)


def load_grayscale(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as :func:`decode_grayscale` reads its bytes, naming it in errors.

    Raises ImageError when the file is missing, a directory, empty, over
    :data:`MAX_PIXELS`, undecodable or without pixels.
    """
    file = Path(path)
    if not file.exists():
        raise ImageError(f"{file}: no such image file")
    if not file.is_file():
        raise ImageError(f"{file}: not a regular file")
    try:
        empty = file.stat().st_size == 0
    except OSError as exc:
        raise ImageError(f"{file}: cannot open: {exc.strerror or exc}") from exc
    if empty:
        raise ImageError(f"{file}: empty file (0 bytes), not an image")
    return _decode(file, str(file))


def decode_grayscale(data: bytes, name: str = "image") -> np.ndarray:
    """Decode an image held in memory (any format Pillow reads: the first frame of
    animations, EXIF orientation applied, 16-bit range kept) as grayscale: float64
    ``(height, width)`` in [0, 1], at most :data:`WORK_SIDE` on its longest side.
    Transparent pixels go onto white when the visible ones are mostly dark, else onto
    black, keeping the contrast. ``name`` starts the error messages.

    Raises ImageError when ``data`` is empty, over :data:`MAX_PIXELS`, undecodable or
    without pixels.
    """
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes), not an image")
    return _decode(io.BytesIO(data), name)


def _decode(source: Path | io.BytesIO, name: str) -> np.ndarray:
    handle = _open(source, name)
    try:
        with handle as img:
            if img.format == "JPEG":
                img.draft(None, (WORK_SIDE, WORK_SIDE))  # decode at 1/2, 1/4 or 1/8 scale
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise _too_large(name, *img.size)
            img.load()
            orientation = img.getexif().get(0x0112)  # before reduce(), which drops it
            small = _reduce(img, WORK_SIDE)
            if orientation in _ORIENTATIONS:
                small = small.transpose(_ORIENTATIONS[orientation])
            gray = _to_gray(small)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{name}: corrupt or truncated {handle.format} image ({exc})") from exc
    if gray.size == 0:
        raise ImageError(f"{name}: image has no pixels ({gray.shape[1]}x{gray.shape[0]})")
    return gray


def _to_gray(img: Image.Image) -> np.ndarray:
    """Return the (h, w) float64 luminance in [0, 1] of a Pillow image, alpha composited."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # 16/32-bit integer or float pixels: the range is guessed from the largest value
        # (float in [0, 1], else 8-bit, else 16-bit).
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        top = float(arr.max(initial=0.0))
        scale = 1.0 if (img.mode == "F" and top <= 1.0) else (255.0 if top <= 255 else 65535.0)
        return np.clip(arr / scale, 0.0, 1.0)
    if img.mode == "L":  # no alpha: the luminance is the picture (a scan, a drawing)
        return np.asarray(img, dtype=np.float64) / 255.0
    if img.mode not in ("LA", "RGBA"):  # P, RGB, CMYK, ...: RGBA keeps a palette's alpha
        img = img.convert("RGBA")
    la = np.asarray(img.convert("LA"), dtype=np.float64) / 255.0
    gray, alpha = la[..., 0], la[..., 1]
    if alpha.size and alpha.min() < 1.0:
        visible = alpha.sum()
        mean_ink = (gray * alpha).sum() / visible if visible > 0 else 0.0
        background = 1.0 if mean_ink < 0.5 else 0.0
        gray = alpha * gray + (1.0 - alpha) * background
    return gray
