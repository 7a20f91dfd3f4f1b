"""Plots small enough to embed in a Prefect artifact: palette PNGs within a text budget."""

from __future__ import annotations

import io
import math

from PIL import Image

#: Largest base64 text of one image embedded in the artifact.
MAX_EMBED_CHARS = 60_000
#: Resolution of embedded images, lowered (not below the minimum) until one fits.
EMBED_DPI, MIN_EMBED_DPI = 72, 36


def _palette_png(image: Image.Image, scale: float, colours: int) -> bytes:
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(colors=colours).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def compact_png(png: bytes, dpi: float, max_chars: int | None = None) -> bytes | None:
    """A small palette PNG of the image ``png`` (a figure drawn at ``dpi``) whose base64
    text fits in ``max_chars`` (default :data:`MAX_EMBED_CHARS`), else ``None``.

    The figure is not drawn again: its pixels are resampled to :data:`EMBED_DPI` with 64
    colours, else to the dpi the size suggests (bytes grow with dpi squared), then with 16
    colours, then to :data:`MIN_EMBED_DPI`.
    """

    def b64_len(data: bytes) -> int:
        return 4 * math.ceil(len(data) / 3)

    max_chars = MAX_EMBED_CHARS if max_chars is None else max_chars
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    data = _palette_png(image, min(1.0, EMBED_DPI / dpi), 64)
    if b64_len(data) <= max_chars:
        return data
    guess = max(MIN_EMBED_DPI, int(EMBED_DPI * math.sqrt(max_chars / b64_len(data)) * 0.9))
    for target, colours in ((guess, 64), (guess, 16), (MIN_EMBED_DPI, 16)):
        data = _palette_png(image, min(1.0, target / dpi), colours)
        if b64_len(data) <= max_chars:
            return data
    return None
