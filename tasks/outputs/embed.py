"""Plots small enough to embed in a Prefect artifact: palette PNGs within a text budget."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from PIL import Image

from tasks.outputs import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Largest base64 text of one image embedded in the artifact.
MAX_EMBED_CHARS = 60_000
#: Resolution of embedded images, lowered (not below the minimum) until one fits.
EMBED_DPI, MIN_EMBED_DPI = 72, 36


def _palette_png(fig: Figure, dpi: float, colours: int) -> bytes:
    image = Image.open(io.BytesIO(plots.figure_to_png(fig, dpi))).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=colours).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def compact_png(fig: Figure, max_chars: int | None = None) -> bytes | None:
    """A small palette PNG of ``fig`` whose base64 text fits in ``max_chars`` (default
    :data:`MAX_EMBED_CHARS`), else ``None``: :data:`EMBED_DPI` with 64 colours, else the dpi
    the size suggests (bytes grow with dpi squared), then 16 colours, then the minimum dpi."""

    def b64_len(data: bytes) -> int:
        return 4 * math.ceil(len(data) / 3)

    max_chars = MAX_EMBED_CHARS if max_chars is None else max_chars
    data = _palette_png(fig, EMBED_DPI, 64)
    if b64_len(data) <= max_chars:
        return data
    guess = max(MIN_EMBED_DPI, int(EMBED_DPI * math.sqrt(max_chars / b64_len(data)) * 0.9))
    for dpi, colours in ((guess, 64), (guess, 16), (MIN_EMBED_DPI, 16)):
        data = _palette_png(fig, dpi, colours)
        if b64_len(data) <= max_chars:
            return data
    return None
