"""Atomic file writes, re-exported from :mod:`nn.atomic`, the one implementation.

``nn`` may import only numpy and the standard library, so the writer lives there and the
pipeline's modules that already import it from here keep working; new code imports
:mod:`nn.atomic` directly.
"""

from nn.atomic import (
    copy_atomic,
    file_mode,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "copy_atomic",
    "file_mode",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
