"""Turn verified IDX files into training-ready arrays stored as ``.npy`` files.

The training file is split, stratified by label, into training and ``val_size``
validation examples, then the training part optionally subsampled, stratified, to
``train_size``; without ``val_size``, ``train_size`` images are drawn first and the
validation part (:func:`tasks.settings.default_val_size`) taken from those. Both draws use
streams derived from ``seed``. Images are stored once per content (a pool) and each split
as indices (:mod:`tasks.data.arrays`), named by content keys and :data:`CODE_VERSION`.
Pure: no Prefect.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nn.config import SettingError
from nn.errors import ConfigError
from tasks.cache import content_key
from tasks.data.arrays import (
    FORMAT_VERSION,
    POOL_FILES,
    POOL_META,
    PreparedData,
    Splits,
    file_sha256,
    load_pool,
    load_prepared,
)
from tasks.data.datasets import ROLES, DatasetFiles
from tasks.data.idx import check_pair, load_idx
from tasks.data.scaling import pixel_stats
from tasks.data.versions import Added
from tasks.errors import CacheError, ChecksumError, DataError
from tasks.files import write_bytes_atomic, write_directory_atomic, write_json_atomic
from tasks.settings import default_val_size

__all__ = [
    "CODE_VERSION",
    "PrepareParams",
    "PreparedData",
    "Splits",
    "load_prepared",
    "pool_dir",
    "prepare",
    "split_indices",
    "split_name",
]

CODE_VERSION = 1
"""Bump when a change here or in :mod:`tasks.data.arrays`, :mod:`tasks.data.scaling` or
:mod:`tasks.data.idx` changes the prepared data: every pool and split is made anew."""


@dataclass(frozen=True)
class PrepareParams:
    """Settings of the preparation step: ``val_size`` (>= 0; 0: no validation split; None:
    the default share of the images used), ``train_size`` (>= 1, None: all; with
    ``val_size`` None, the validation part included), ``standardize`` with the training
    split's global mean and std, ``seed`` (>= 0) of the split and subsampling streams."""

    val_size: int | None = None
    train_size: int | None = None
    standardize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.val_size is not None:
            if isinstance(self.val_size, bool) or not isinstance(self.val_size, int | np.integer):
                raise ConfigError(f"val_size={self.val_size!r} must be an integer >= 0")
            if self.val_size < 0:
                raise ConfigError(f"val_size={self.val_size} must be >= 0")
        if self.train_size is not None and (
            isinstance(self.train_size, bool)
            or not isinstance(self.train_size, int | np.integer)
            or self.train_size < 1
        ):
            raise ConfigError(
                f"train_size must be None or an integer >= 1, got {self.train_size!r}"
            )
        if not isinstance(self.standardize, bool):
            raise ConfigError(f"standardize must be True or False, got {self.standardize!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


def _stream_seed(seed: int, stream: int) -> int:
    """An independent integer seed for sklearn, derived from ``seed``."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def split_indices(labels: np.ndarray, params: PrepareParams) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted ``(train_idx, val_idx)`` into ``labels``, stratified by label.

    Raises ConfigError when ``val_size`` or ``train_size`` is too large, or too small to
    hold every class.
    """
    n = labels.shape[0]
    index = np.arange(n)
    val_size, train_size = params.val_size, params.train_size
    n_classes = int(np.unique(labels).size)
    used = n if train_size is None else min(train_size, n)
    if val_size is None and default_val_size(used, n_classes) < n_classes:
        used = n  # too few images to hold out one per class: the rest of the file does
    if val_size is None and used < n:
        # the default split adapts to the images used: drawn from the train_size images
        # (the same ones val_size=0 trains on), not from the whole file
        index = _subsample(index, labels, used, params.seed)
        val_size, train_size = default_val_size(used, n_classes), None
    elif val_size is None:
        val_size = default_val_size(n, n_classes)
        train_size = None if train_size == n else train_size  # every image, as without it
    elif val_size >= n:
        raise SettingError(
            "val_size", val_size, f"must be < {n}, the number of images in the training file"
        )
    val_idx = index[:0]
    train_idx = index
    if val_size:
        from sklearn.model_selection import train_test_split  # here: only a split needs it

        try:
            train_idx, val_idx = train_test_split(
                index,
                test_size=val_size,
                stratify=labels[index],
                random_state=_stream_seed(params.seed, 1),
            )
        except ValueError as exc:
            raise SettingError("val_size", val_size, f"cannot split stratified ({exc})") from None
    if train_size is not None and train_size < train_idx.shape[0]:
        train_idx = _subsample(train_idx, labels, train_size, params.seed)
    elif train_size is not None and train_size > train_idx.shape[0]:
        raise SettingError(
            "train_size",
            train_size,
            f"must be <= {train_idx.shape[0]}, the training images left after the validation "
            f"split of {val_idx.shape[0]}",
        )
    return np.sort(train_idx), np.sort(val_idx)


def _subsample(index: np.ndarray, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` of ``index``, stratified by label (``train_size``'s random stream)."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            index, train_size=size, stratify=labels[index], random_state=_stream_seed(seed, 2)
        )[0]
    except ValueError as exc:
        raise SettingError("train_size", size, f"cannot subsample stratified ({exc})") from None


def read_verified(files: DatasetFiles) -> dict[str, np.ndarray]:
    """Read the four files, checking them against the checksums recorded at fetch time.

    Raises ChecksumError (a file changed since) or IDXFormatError (malformed, disagreeing).
    """
    arrays = {}
    for role in ROLES:
        info = load_idx(files.path(role), kind="images" if "images" in role else "labels")
        if info.sha256 != files.checksums[role]:
            raise ChecksumError(
                f"{info.path}: content changed since it was fetched (SHA-256 {info.sha256}, "
                f"expected {files.checksums[role]}); fetch the dataset again"
            )
        arrays[role] = info.array
    for split in ("train", "test"):
        check_pair(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            n_classes=files.n_classes,
            images_name=str(files.path(f"{split}_images")),
            labels_name=str(files.path(f"{split}_labels")),
        )
    return arrays


def pool_dir(root: Path, files: DatasetFiles, added: Added | None = None) -> Path:
    """The pool folder of ``files`` (and the ``added`` batches) under ``root``, named by
    content and :data:`CODE_VERSION`, so the same content always maps to the same folder."""
    ids = list(added.ids) if added is not None else []
    key = content_key(
        version=CODE_VERSION, checksums=files.checksums, n_classes=files.n_classes, added=ids
    )
    return Path(root) / f"{files.name}-{key}"


def split_name(params: PrepareParams) -> str:
    """The name of the split made with ``params`` in a pool folder."""
    return "split-" + content_key(version=CODE_VERSION, **asdict(params))


def prepare(
    files: DatasetFiles,
    params: PrepareParams,
    root: Path,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    added: Added | None = None,
) -> PreparedData:
    """Store the pool of ``files`` under ``root`` (``<cache>/prepared``) unless already
    there, and the split ``params`` make; return its handle. The ``added`` batches'
    training part is appended to the training split (after the validation split and
    ``train_size``); their held-out part is left for the evaluation.
    """
    log = logger or logging.getLogger(__name__)
    directory = pool_dir(root, files, added)
    meta = load_pool(directory) or _write_pool(directory, files, added)
    pool = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in POOL_FILES}
    n_file = int(meta["n_train_file"])
    train_idx, val_idx = split_indices(np.asarray(pool["train_labels"][:n_file]), params)
    train_idx = np.concatenate([train_idx, np.arange(n_file, pool["train_labels"].shape[0])])
    train_images = pool["train_images"][train_idx]
    mean, std = pixel_stats(train_images) if params.standardize else (0.0, 1.0)
    if params.standardize and std == 0.0:
        raise DataError(f"{files.train_images}: every training pixel has the same value; std is 0")
    split = split_name(params)
    buf = io.BytesIO()
    np.savez(buf, train=train_idx.astype(np.int64), val=val_idx.astype(np.int64))
    write_bytes_atomic(directory / f"{split}.npz", buf.getvalue())
    rows, cols = pool["train_images"].shape[1:]
    prepared = PreparedData(
        name=files.name,
        checksums=dict(files.checksums),
        n_classes=files.n_classes,
        image_shape=(int(rows), int(cols)),
        preprocessing={"standardize": params.standardize, "mean": mean, "std": std},
        directory=directory,
        split=split,
        n_train=int(train_idx.size),
        n_val=int(val_idx.size),
        n_test=int(pool["test_labels"].shape[0]),
        params=asdict(params),
        added=added.lineage() if added is not None and added.ids else {},
        sha256={**meta["sha256"], f"{split}.npz": file_sha256(directory / f"{split}.npz")},
    )
    write_json_atomic(directory / f"{split}.json", prepared.to_json(), indent=2)
    log.info(
        "prepared %s: %d train, %d validation, %d test examples (mean %.4f, std %.4f) in %s",
        files.name, prepared.n_train, prepared.n_val, prepared.n_test, mean, std, directory,
    )  # fmt: skip
    return prepared


def _write_pool(directory: Path, files: DatasetFiles, added: Added | None) -> dict[str, Any]:
    """Write the pool's arrays and ``arrays.json`` into a folder that appears atomically;
    return that JSON. A complete pool already there (a concurrent run) is kept."""
    raw = read_verified(files)
    train_images, train_labels = raw["train_images"], raw["train_labels"].astype(np.int64)
    if added is not None and added.ids:
        extra_images, extra_labels = added.load(heldout=False)
        train_images = np.concatenate([train_images, extra_images])
        train_labels = np.concatenate([train_labels, extra_labels.astype(np.int64)])
    arrays = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": raw["test_images"],
        "test_labels": raw["test_labels"].astype(np.int64),
    }
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        with write_directory_atomic(
            directory, replace_existing=lambda existing: load_pool(existing) is None
        ) as tmp:
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
            meta = {
                "format_version": FORMAT_VERSION,
                "n_train_file": int(raw["train_labels"].size),
                "sha256": {f"{n}.npy": file_sha256(tmp / f"{n}.npy") for n in arrays},
            }
            write_json_atomic(tmp / POOL_META, meta, indent=2)
    except OSError as exc:  # numpy's "Not enough free space" names no file
        raise CacheError(f"cannot write the prepared arrays {directory}: {exc}") from exc
    return load_pool(directory) or meta
