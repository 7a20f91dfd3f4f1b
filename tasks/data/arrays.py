"""Prepared data on disk: a dataset's arrays stored once, a split as indices into them.

A *pool* folder holds a dataset's uint8 images and labels as read from its files (the
added batches' training part after the training file's) and ``arrays.json`` with each
file's SHA-256. A *split* is ``split-<key>.npz`` (sorted training and validation indices
into the pool) and ``split-<key>.json`` (settings, scaling statistics, counts, SHA-256):
another seed adds a split, never a copy of the images. Steps check every file's SHA-256
before reading (:meth:`PreparedData.verify`), so a damaged file is never trained on.
Pure: no Prefect.
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
from tasks.data.scaling import prepare_images
from tasks.errors import ChecksumError, DataError

FORMAT_VERSION = 3  # 3: one pool of images per dataset, splits as indices
POOL_META = "arrays.json"
POOL_FILES: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")


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
    """A small, picklable handle on a split of a dataset stored as ``.npy`` files.

    ``checksums``: role -> SHA-256 of the source IDX files; ``image_shape``: ``(rows,
    cols)``; ``preprocessing``: ``{"standardize", "mean", "std"}`` for
    :func:`prepare_images` (stored with the model); ``directory``: the pool folder;
    ``split``: ``split-<key>``; ``params``: the :class:`tasks.data.prepare.PrepareParams`
    as a dict; ``added``: :meth:`tasks.data.versions.Added.lineage` of the batches appended
    to the training split (empty: none); ``sha256``: file name -> SHA-256 recorded when
    written and checked by :meth:`verify`.
    """

    name: str
    checksums: dict[str, str] = field(hash=False)
    n_classes: int
    image_shape: tuple[int, int]
    preprocessing: dict[str, Any] = field(hash=False)
    directory: Path
    split: str
    n_train: int
    n_val: int
    n_test: int
    params: dict[str, Any] = field(hash=False)
    added: dict[str, Any] = field(default_factory=dict, hash=False)
    sha256: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """What names this data by content: the pool folder's name and the split's."""
        return f"{Path(self.directory).name}/{self.split}"

    @property
    def fingerprint(self) -> str:
        """SHA-256 identifying the source dataset's content."""
        return fingerprint(self.checksums)

    def files(self) -> dict[str, Path]:
        """File name -> path of every file the split reads."""
        return {name: Path(self.directory) / name for name in self.sha256}

    def changed(self) -> list[str]:
        """The files that are missing or no longer have the SHA-256 recorded for them."""
        changed = []
        for name, path in self.files().items():
            try:
                same = file_sha256(path) == self.sha256[name]
            except OSError:
                same = False
            if not same:
                changed.append(name)
        return changed

    def verify(self) -> None:
        """Check every file against its recorded SHA-256 before a step reads it.

        Raises ChecksumError naming the changed files (running again prepares them anew).
        """
        changed = self.changed()
        if changed:
            names = ", ".join(str(Path(self.directory) / name) for name in changed)
            raise ChecksumError(
                f"{names}: prepared data changed since it was written (SHA-256 "
                "mismatch); run the command again to prepare it anew"
            )

    def load(self, mmap: bool = True) -> Splits:
        """Gather and scale the split's images: float32 arrays in memory. The pool is always
        memory-mapped (``mmap`` is ignored). Raises DataError when a file is unreadable."""
        folder = Path(self.directory)
        try:
            pool = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in POOL_FILES}
            with np.load(folder / f"{self.split}.npz", allow_pickle=False) as index:
                train_idx, val_idx = index["train"], index["val"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"{folder}: cannot load prepared data ({exc}); delete {folder} and run the "
                "preprocessing again"
            ) from None
        images, labels = pool["train_images"], pool["train_labels"]
        has_val = val_idx.size > 0
        return Splits(
            X_train=prepare_images(images[train_idx], self.preprocessing),
            y_train=np.asarray(labels[train_idx]),
            X_val=prepare_images(images[val_idx], self.preprocessing) if has_val else None,
            y_val=np.asarray(labels[val_idx]) if has_val else None,
            X_test=prepare_images(pool["test_images"], self.preprocessing),
            y_test=np.asarray(pool["test_labels"]),
        )

    def load_test(self) -> tuple[np.ndarray, np.ndarray]:
        """The test split alone, as :meth:`load` gives it: ``(X_test, y_test)``."""
        folder = Path(self.directory)
        images, labels = (np.load(folder / f"{n}.npy", mmap_mode="r") for n in POOL_FILES[2:])
        return prepare_images(images, self.preprocessing), np.asarray(labels)

    def to_json(self) -> dict[str, Any]:
        """Return the split's JSON description (without its folder)."""
        data = asdict(self)
        del data["directory"]
        data["image_shape"] = list(self.image_shape)
        return {"format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any], directory: Path) -> PreparedData:
        """Rebuild from :meth:`to_json` output, with the pool in ``directory``."""
        if data.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{directory}: unsupported format_version")
        fields = {k: v for k, v in data.items() if k != "format_version"}
        fields["image_shape"] = tuple(fields["image_shape"])
        return cls(directory=Path(directory), **fields)


def load_prepared(
    directory: Path, split: str, logger: logging.Logger | logging.LoggerAdapter[Any] | None = None
) -> PreparedData | None:
    """Return the split ``split`` of the pool in ``directory`` if complete and unchanged.

    None when absent, incomplete, of an older format, or when a file no longer has the
    SHA-256 recorded for it (logged as a warning: the caller prepares it anew).
    """
    try:
        data = json.loads((Path(directory) / f"{split}.json").read_text(encoding="utf-8"))
        prepared = PreparedData.from_json(data, Path(directory))
    except (OSError, ValueError, TypeError, KeyError, DataError):
        return None
    changed = prepared.changed()
    if changed:
        (logger or logging.getLogger(__name__)).warning(
            "prepared files %s in %s changed since they were written (SHA-256 mismatch); "
            "preparing them again",
            ", ".join(changed),
            directory,
        )
        return None
    return prepared


def load_pool(directory: Path) -> dict[str, Any] | None:
    """The pool's ``arrays.json`` if every array is there unchanged, else None."""
    try:
        meta = json.loads((Path(directory) / POOL_META).read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            return None
        digests = {f"{name}.npy": meta["sha256"][f"{name}.npy"] for name in POOL_FILES}
        if all(file_sha256(Path(directory) / n) == d for n, d in digests.items()):
            return dict(meta, sha256=digests)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return None


_HASHED: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process while its inode, size and mtime stay:
    it catches any change, and a second check in the same run is a ``stat`` call."""
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        with open(path, "rb") as fh:
            _HASHED[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _HASHED[key]
