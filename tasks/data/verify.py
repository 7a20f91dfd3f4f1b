"""Verify a dataset file against what is published about it (the strongest check wins).

The file is parsed as IDX. A known SHA-256 (and length) of the decompressed content must
match, which accepts the mirrors' ``.gz``, recompressed and uncompressed copies alike;
else a known MD5 of the published ``.gz`` requires that exact ``.gz``; without checksums
(``idx``) the structural checks only. Pure: no Prefect.

A cache folder whose four files passed keeps a record of it (:func:`record_verified`), so
the next fetch reads four ``stat`` results instead of decompressing and hashing the files
again, as long as no file changed (:func:`verified_before`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.data.datasets import ROLES, DatasetFiles
from tasks.data.idx import IDXFile, load_idx
from tasks.errors import ChecksumError, DataError
from tasks.files import write_json_atomic

if TYPE_CHECKING:
    from tasks.data.datasets import DatasetSpec, FileSpec

RECORD = "verified.json"
"""The record of a cache folder whose four files were verified together."""

SETTLE_NS = 10 * 10**9
"""How far back a verified file's modification time is set (when more recent), so that
any later write changes it, even one within the file system's timestamp granularity."""


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


def _identity(path: Path) -> list[int]:
    """What any change to a file changes: size, modification and change times, inode."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def record_verified(folder: Path, files: DatasetFiles, spec: DatasetSpec) -> None:
    """Record in ``folder`` that ``files`` (all four in it) passed verification against
    ``spec``, with each file's identity (:func:`_identity`); best effort (a read-only
    cache is verified in full each time)."""
    now = time.time_ns()
    try:
        identities = {}
        for role in ROLES:
            path = files.path(role)
            st = path.stat()
            if st.st_mtime_ns > now - SETTLE_NS:
                os.utime(path, ns=(st.st_atime_ns, now - SETTLE_NS))
            identities[role] = [path.name, *_identity(path)]
        record = {"spec": repr(spec.files), "checksums": files.checksums, "files": identities,
                  "n_classes": files.n_classes, "image_shape": list(files.image_shape)}  # fmt: skip
        write_json_atomic(folder / RECORD, record)
    except OSError:
        pass


def verified_before(folder: Path, spec: DatasetSpec) -> DatasetFiles | None:
    """The files ``folder``'s record names when the record is for ``spec`` and no file
    changed since (:func:`_identity`); None otherwise (the caller verifies them in full)."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        if record["spec"] != repr(spec.files):
            return None
        paths = {role: folder / record["files"][role][0] for role in ROLES}
        if any(_identity(paths[role]) != record["files"][role][1:] for role in ROLES):
            return None
        return DatasetFiles(
            spec.name, **paths, checksums=record["checksums"], n_classes=record["n_classes"],
            image_shape=tuple(record["image_shape"]), sources=dict.fromkeys(ROLES, "cache"),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, IndexError, DataError):
        return None
