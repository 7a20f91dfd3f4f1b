"""A strict reader of the IDX files that hold MNIST-style datasets.

An IDX file is a big-endian header followed by a dense array of unsigned bytes:
two zero bytes, a type code (``0x08``: unsigned byte), the number of dimensions, then one
32-bit size per dimension: labels (magic 2049) are ``(n,)``, images (magic 2051)
``(n, rows, cols)``. Files may be gzip-compressed or not (detected from their first
bytes). The SHA-256 of the decompressed bytes is computed in the same pass, so a file
verifies against published checksums whatever its compression. Pure: numpy and stdlib.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from tasks.errors import DataError, IDXFormatError

MAGIC_LABELS = 2049
MAGIC_IMAGES = 2051
_MAGIC_KIND: dict[int, str] = {MAGIC_LABELS: "labels", MAGIC_IMAGES: "images"}
GZIP_MAGIC = b"\x1f\x8b"
#: Largest data section accepted (4 GiB): bounds memory for a header that lies.
MAX_DATA_BYTES = 1 << 32
_CHUNK = 1 << 20

Kind = Literal["images", "labels"]


@dataclass(frozen=True)
class IDXFile:
    """A parsed IDX file: its ``path``, uint8 ``array`` (``(n,)`` labels or ``(n, rows,
    cols)`` images), ``kind``, ``sha256`` of the decompressed content, and ``compressed``."""

    path: Path
    array: np.ndarray
    kind: str
    sha256: str
    compressed: bool

    @property
    def content_size(self) -> int:
        """Length in bytes of the decompressed content: header (4 + 4 per dimension) and data."""
        return 4 + 4 * self.array.ndim + self.array.size


def read_idx(path: str | os.PathLike[str], *, kind: Kind | None = None) -> np.ndarray:
    """Read and validate one IDX file; its uint8 array (see :func:`load_idx`)."""
    return load_idx(path, kind=kind).array


def load_idx(path: str | os.PathLike[str], *, kind: Kind | None = None) -> IDXFile:
    """Read and validate one IDX file (gzip-compressed or not); ``kind`` ``"images"`` or
    ``"labels"`` requires that kind, None accepts both.

    Raises
    ------
    IDXFormatError
        Bad magic number, zero dimension, data length differing from the header,
        corrupt or truncated gzip stream, empty file, wrong kind.
    DataError
        The file does not exist or cannot be read.
    """
    path = Path(path)
    if kind not in (None, "images", "labels"):
        raise ValueError(f"kind must be 'images', 'labels' or None, not {kind!r}")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            compressed = f.read(2) == GZIP_MAGIC
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise IDXFormatError(f"{path}: empty file (0 bytes), expected an IDX file")
    if path.suffix == ".gz" and not compressed:
        raise IDXFormatError(f"{path}: named .gz but not gzip-compressed (bad gzip magic bytes)")
    try:
        if compressed:
            with gzip.open(path, "rb") as f:
                return _parse(f, path, kind, compressed=True, raw_size=None)
        with open(path, "rb") as f:
            return _parse(f, path, kind, compressed=False, raw_size=size)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IDXFormatError(
            f"{path}: corrupt or truncated gzip stream ({exc or type(exc).__name__})"
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def _parse(
    f: BinaryIO, path: Path, kind: Kind | None, *, compressed: bool, raw_size: int | None
) -> IDXFile:
    """Parse an open stream positioned at the start of the IDX content."""
    digest = hashlib.sha256()
    magic_bytes = _read_header(f, 4, path, "magic number")
    digest.update(magic_bytes)
    (magic,) = struct.unpack(">I", magic_bytes)
    found = _MAGIC_KIND.get(magic)
    if found is None:
        raise IDXFormatError(
            f"{path}: bad magic number {magic} (0x{magic:08x}); expected "
            f"{MAGIC_LABELS} for labels or {MAGIC_IMAGES} for images"
        )
    if kind is not None and found != kind:
        want = MAGIC_IMAGES if kind == "images" else MAGIC_LABELS
        raise IDXFormatError(
            f"{path}: holds {found} (magic {magic}) where {kind} (magic {want}) were expected"
        )
    ndim = magic & 0xFF
    dims_bytes = _read_header(f, 4 * ndim, path, f"{ndim} dimension sizes")
    digest.update(dims_bytes)
    shape = struct.unpack(f">{ndim}I", dims_bytes)
    for axis, dim in enumerate(shape):
        if dim == 0:
            raise IDXFormatError(f"{path}: dimension {axis} of shape {shape} is 0")
    expected = math.prod(shape)
    header_len = 4 + 4 * ndim
    if expected > MAX_DATA_BYTES:
        raise IDXFormatError(
            f"{path}: header declares shape {shape} ({expected} bytes), more than the "
            f"{MAX_DATA_BYTES} bytes accepted"
        )
    if raw_size is not None and raw_size != header_len + expected:
        raise IDXFormatError(_length_message(path, shape, expected, raw_size - header_len))
    data = _read_data(f, expected, path, shape)
    digest.update(data)
    array = np.frombuffer(data, dtype=np.uint8).reshape(shape)
    return IDXFile(path, array, found, digest.hexdigest(), compressed)


def _read_header(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    """Read exactly ``n`` header bytes or raise naming what was being read."""
    data = f.read(n)
    if len(data) != n:
        raise IDXFormatError(
            f"{path}: truncated header: {len(data)} of the {n} bytes of the {what}"
        )
    return data


def _read_data(f: BinaryIO, expected: int, path: Path, shape: tuple[int, ...]) -> bytearray:
    """Read exactly ``expected`` data bytes in chunks; fail on fewer or more."""
    data = bytearray()
    while len(data) < expected:
        chunk = f.read(min(_CHUNK, expected - len(data)))
        if not chunk:
            raise IDXFormatError(_length_message(path, shape, expected, len(data)))
        data += chunk
    extra = f.read(_CHUNK)
    if extra:
        actual = expected + len(extra)
        raise IDXFormatError(_length_message(path, shape, expected, actual, at_least=True))
    return data


def _length_message(
    path: Path, shape: tuple[int, ...], expected: int, actual: int, *, at_least: bool = False
) -> str:
    what = "truncated" if actual < expected else "trailing bytes"
    holds = f"at least {actual}" if at_least else str(actual)
    return (
        f"{path}: {what}: the header declares shape {shape}, i.e. {expected} data bytes, "
        f"but the file holds {holds}"
    )


def check_pair(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    images_name: str = "images",
    labels_name: str = "labels",
) -> None:
    """Check that uint8 ``(n, rows, cols)`` images and ``(n,)`` labels agree, with labels
    in ``[0, n_classes)``; the names (file paths) are for the message.

    Raises IDXFormatError when the counts differ or a label is out of range.
    """
    if images.shape[0] != labels.shape[0]:
        raise IDXFormatError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} holds "
            f"{labels.shape[0]} labels; the counts must agree"
        )
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise IDXFormatError(
            f"label {int(labels[bad[0]])} in {labels_name}, classes 0-{n_classes - 1}: label "
            f"{int(labels[bad[0]])} at index {int(bad[0])} is out of range; labels must lie in "
            f"[0, {n_classes - 1}] ({bad.size} labels out of range)"
        )


def infer_n_classes(labels: np.ndarray, labels_name: str = "labels") -> int:
    """The number of classes ``K`` of undeclared training labels: ``0 .. K-1``, each with at
    least two images (a stratified split needs two). A label past a missing or near-empty
    class is an error (labels 0-9 plus a stray 11: ten classes, one bad label).

    Raises IDXFormatError (``"label 11 in FILE, classes 0-9 ..."``) or fewer than two classes.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    sparse = np.flatnonzero(counts < 2)
    n_classes = int(sparse[0]) if sparse.size else int(counts.size)
    if n_classes < 2:
        raise IDXFormatError(
            f"{labels_name}: needs at least two classes 0, 1, ... with two images each "
            f"(label counts {counts.tolist()[:10]})"
        )
    stray = np.flatnonzero(labels >= n_classes)
    if stray.size:
        label = int(labels[stray[0]])
        raise IDXFormatError(
            f"label {label} in {labels_name}, classes 0-{n_classes - 1}: "
            f"{int(counts[n_classes])} training image(s) of class {n_classes} and "
            f"{stray.size} label(s) >= {n_classes} (first at index {int(stray[0])}); "
            "fix or remove them"
        )
    return n_classes
