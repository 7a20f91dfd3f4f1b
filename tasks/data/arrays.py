"""Prepared arrays on disk: the handle on the ``.npy`` files, their checksums, loading them.

:class:`PreparedData` is what the preprocessing step returns (small and picklable); the
arrays stay in ``.npy`` files that :meth:`PreparedData.load` memory-maps. Each file's
SHA-256 is recorded in ``prepared.json`` when it is written, and the steps that read the
arrays check it first (:meth:`PreparedData.verify`), so a cached array that was changed
or damaged is never trained on: the preprocessing step prepares it anew.

This module is pure: no Prefect.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.datasets import fingerprint
from tasks.errors import ChecksumError, DataError

FORMAT_VERSION = 2  # 2: the arrays' SHA-256 in prepared.json
META_NAME = "prepared.json"
ARRAY_NAMES: tuple[str, ...] = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


@dataclass
class Splits:
    """The prepared arrays.

    ``X_*`` are float32 ``(n, rows * cols)``, scaled (and standardised if requested);
    ``y_*`` are int64 ``(n,)``. ``X_val`` and ``y_val`` are None without a validation split.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class PreparedData:
    """A small, picklable handle on prepared arrays stored as ``.npy`` files.

    Attributes
    ----------
    name:
        Dataset name.
    checksums:
        Role -> SHA-256 of the source IDX files' decompressed content.
    n_classes:
        Number of classes.
    image_shape:
        ``(rows, cols)`` of one image; features are ``rows * cols``.
    preprocessing:
        ``{"standardize": bool, "mean": float, "std": float}``: apply with
        :func:`prepare_images` to new images (store it with the model).
    paths:
        Array name (:data:`ARRAY_NAMES`) -> ``.npy`` path; without ``X_val``/``y_val``
        when ``n_val == 0``.
    n_train, n_val, n_test:
        Example counts.
    params:
        The :class:`PrepareParams` used, as a dict.
    added:
        :meth:`tasks.data.versions.Added.lineage` of the added batches whose training
        part is appended to the training split (empty: the base dataset alone).
    sha256:
        Array name -> SHA-256 of its ``.npy`` file, recorded when it was written and
        checked by :meth:`verify` (the steps that read the arrays call it).
    """

    name: str
    checksums: dict[str, str] = field(hash=False)
    n_classes: int
    image_shape: tuple[int, int]
    preprocessing: dict[str, Any] = field(hash=False)
    paths: dict[str, Path] = field(hash=False)
    n_train: int
    n_val: int
    n_test: int
    params: dict[str, Any] = field(hash=False)
    added: dict[str, Any] = field(default_factory=dict, hash=False)
    sha256: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def directory(self) -> Path:
        """The directory holding the arrays."""
        return Path(self.paths["X_train"]).parent

    @property
    def fingerprint(self) -> str:
        """SHA-256 identifying the source dataset's content."""
        return fingerprint(self.checksums)

    def missing(self) -> list[Path]:
        """Return the array files that no longer exist."""
        return [Path(p) for p in self.paths.values() if not Path(p).is_file()]

    def changed(self) -> list[str]:
        """The arrays whose file no longer has the SHA-256 recorded when it was written.

        A missing file counts as changed. Each file is hashed once per process while
        its size and modification time stay the same (:func:`file_sha256`).
        """
        changed = []
        for name, path in self.paths.items():
            try:
                same = file_sha256(Path(path)) == self.sha256.get(name)
            except OSError:
                same = False
            if not same:
                changed.append(name)
        return changed

    def verify(self) -> None:
        """Check every array against its recorded SHA-256 before a step reads it.

        Raises
        ------
        ChecksumError
            Naming the changed files; running the command again prepares them anew
            (the preprocessing step checks them too and recomputes changed arrays).
        """
        changed = self.changed()
        if changed:
            files = ", ".join(str(self.paths[name]) for name in changed)
            raise ChecksumError(
                f"{files}: prepared array(s) changed since they were written (SHA-256 "
                "mismatch); run the command again to prepare them anew"
            )

    def load(self, mmap: bool = True) -> Splits:
        """Load the arrays, memory-mapped read-only when ``mmap`` (the default).

        Raises
        ------
        DataError
            An array file is missing or unreadable.
        """
        arrays: dict[str, np.ndarray | None] = {"X_val": None, "y_val": None}
        for name, path in self.paths.items():
            try:
                arrays[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(
                    f"{path}: cannot load prepared array {name} ({exc}); delete {self.directory} "
                    "and run the preprocessing again"
                ) from None
        return Splits(**arrays)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able description (paths relative to :attr:`directory`)."""
        data = asdict(self)
        data["paths"] = {k: Path(p).name for k, p in self.paths.items()}
        data["image_shape"] = list(self.image_shape)
        return {"format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any], directory: Path) -> PreparedData:
        """Rebuild from :meth:`to_json` output, with arrays in ``directory``."""
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{directory / META_NAME}: unsupported format_version")
        fields = {k: v for k, v in data.items() if k != "format_version"}
        fields["paths"] = {k: Path(directory) / name for k, name in fields["paths"].items()}
        fields["image_shape"] = tuple(fields["image_shape"])
        return cls(**fields)


def load_prepared(
    out_dir: Path, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None
) -> PreparedData | None:
    """Return the complete, unchanged result stored in ``out_dir``, or None.

    None when absent, incomplete, of an older format, or when an array no longer has
    the SHA-256 recorded for it (logged as a warning: the caller prepares it anew).
    """
    try:
        data = json.loads((Path(out_dir) / META_NAME).read_text())
        prepared = PreparedData.from_json(data, Path(out_dir))
    except (OSError, ValueError, TypeError, KeyError, DataError):
        return None
    if prepared.missing():
        return None
    changed = prepared.changed()
    if changed:
        (logger or logging.getLogger(__name__)).warning(
            "prepared arrays %s in %s changed since they were written (SHA-256 mismatch); "
            "preparing them again",
            ", ".join(changed),
            out_dir,
        )
        return None
    return prepared


_HASHED: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process while its inode, size and mtime stay.

    Why SHA-256 of the whole file: it catches any change, and hashing is cheaper than
    reading the file into an array (``bench/data_speed.py`` measures both); the memo
    makes a second check in the same run (preprocess, then train) a ``stat`` call.
    """
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        with open(path, "rb") as fh:
            _HASHED[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _HASHED[key]
