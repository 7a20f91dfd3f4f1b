"""Verify a dataset file against what is published about it (the strongest check wins).

The file is parsed as IDX. A known SHA-256 (and length) of the decompressed content must
match, which accepts the mirrors' ``.gz``, recompressed and uncompressed copies alike;
else a known MD5 of the published ``.gz`` requires that exact ``.gz``; without checksums
(``idx``) the structural checks only. Pure: no Prefect.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from tasks.data.idx import IDXFile, load_idx
from tasks.errors import ChecksumError

if TYPE_CHECKING:
    from tasks.data.datasets import FileSpec


def md5sum(path: str | os.PathLike[str]) -> str:
    """Return the hex MD5 of a file's bytes (as published for the MNIST downloads)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike[str], spec: FileSpec) -> IDXFile:
    """Parse ``path`` (gzip-compressed or not) and check it against ``spec``; the parsed file.

    Raises IDXFormatError (not a valid IDX file of the expected kind) or ChecksumError (a
    known checksum does not match, or the file cannot be verified: see the module doc).
    """
    info = load_idx(path, kind="images" if spec.kind == "images" else "labels")
    if spec.size is not None and info.content_size != spec.size:
        raise ChecksumError(
            f"{path}: decompressed content is {info.content_size} bytes (shape "
            f"{info.array.shape}), expected {spec.size} for {spec.filename}"
        )
    if spec.sha256 is not None:
        if info.sha256 != spec.sha256:
            raise ChecksumError(
                f"{path}: SHA-256 of the decompressed content is {info.sha256}, "
                f"expected {spec.sha256} for {spec.filename}"
            )
        return info
    if spec.md5 is None:
        return info
    if not info.compressed:
        raise ChecksumError(
            f"{path}: an uncompressed copy of {spec.filename} cannot be verified (only the MD5 "
            "of the published .gz is known); provide the original .gz, or use dataset=idx "
            "to skip checksum verification"
        )
    got = md5sum(path)
    if got != spec.md5:
        raise ChecksumError(
            f"{path}: MD5 is {got}, expected {spec.md5} for the published {spec.filename} "
            "(no SHA-256 of its content is known to verify a recompressed copy; use the "
            "original .gz, or dataset=idx to skip checksum verification)"
        )
    return info
