"""Turn verified IDX files into training-ready arrays stored as ``.npy`` files.

Notation: images are uint8 ``(n, rows, cols)``; the prepared features are
``X = (images / 255 - mean) / std`` as float32 ``(n, rows * cols)`` when
standardising (``mean``/``std`` are global scalars computed on the training split
only), else ``X = images / 255``; labels ``y`` are int64 ``(n,)``.

The training file is split, stratified by label, into training and validation
parts (``val_size`` examples; 0 means no validation split), then the training
part is optionally subsampled, stratified, to ``train_size`` examples. Both use
random streams derived from ``seed``. Arrays are written to a directory that
appears atomically, with a ``prepared.json`` describing them, so big arrays stay
out of Prefect's result store and can be memory-mapped.

The handle on the stored arrays and their checksums live in :mod:`tasks.data.arrays`
(re-exported here). This module is pure: no Prefect.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nn.atomic import write_directory_atomic
from nn.config import SettingError
from nn.errors import ConfigError
from tasks.data.arrays import META_NAME, PreparedData, Splits, file_sha256, load_prepared
from tasks.data.datasets import ROLES, DatasetFiles
from tasks.data.idx import check_pair, load_idx
from tasks.data.scaling import pixel_stats, prepare_images
from tasks.data.versions import Added
from tasks.errors import ChecksumError, DataError
from tasks.settings import default_val_size

__all__ = ["PrepareParams", "PreparedData", "Splits", "load_prepared", "prepare", "split_indices"]


@dataclass(frozen=True)
class PrepareParams:
    """Settings of the preparation step.

    Attributes
    ----------
    val_size:
        Validation examples taken from the training file (>= 0; 0: no validation split;
        None: :func:`tasks.settings.default_val_size` of the file's size).
    train_size:
        Training examples kept after the split (>= 1), or None for all of them.
    standardize:
        Whether to standardise with the training split's global mean and std.
    seed:
        Seed of the split and subsampling streams (>= 0).
    """

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

    Raises
    ------
    ConfigError
        ``val_size`` or ``train_size`` too large, or too small to hold every class.
    """
    n = labels.shape[0]
    index = np.arange(n)
    val_size = params.val_size
    if val_size is None:
        val_size = default_val_size(n, int(np.unique(labels).size))
    elif val_size >= n:
        raise SettingError(
            "val_size", val_size, f"must be < {n}, the number of images in the training file"
        )
    val_idx = index[:0]
    train_idx = index
    from sklearn.model_selection import train_test_split  # here: a cached run splits nothing

    if val_size:
        try:
            train_idx, val_idx = train_test_split(
                index,
                test_size=val_size,
                stratify=labels,
                random_state=_stream_seed(params.seed, 1),
            )
        except ValueError as exc:
            raise SettingError("val_size", val_size, f"cannot split stratified ({exc})") from None
    if params.train_size is not None and params.train_size < train_idx.shape[0]:
        try:
            train_idx, _ = train_test_split(
                train_idx,
                train_size=params.train_size,
                stratify=labels[train_idx],
                random_state=_stream_seed(params.seed, 2),
            )
        except ValueError as exc:
            raise SettingError(
                "train_size", params.train_size, f"cannot subsample stratified ({exc})"
            ) from None
    elif params.train_size is not None and params.train_size > train_idx.shape[0]:
        raise SettingError(
            "train_size",
            params.train_size,
            f"must be <= {train_idx.shape[0]}, the training images left after the validation "
            f"split of {val_idx.shape[0]}",
        )
    return np.sort(train_idx), np.sort(val_idx)


def read_verified(files: DatasetFiles) -> dict[str, np.ndarray]:
    """Read the four files, checking them against the checksums recorded at fetch time.

    Raises
    ------
    ChecksumError
        A file changed since it was fetched.
    IDXFormatError
        A file is malformed or images and labels disagree.
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


def prepare(
    files: DatasetFiles,
    params: PrepareParams,
    out_dir: Path,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    added: Added | None = None,
) -> PreparedData:
    """Read, split, scale and store a dataset; return the handle on the stored arrays.

    Parameters
    ----------
    files:
        The verified files from the fetch step.
    params:
        Split and scaling settings.
    out_dir:
        Directory to create (atomically) with the ``.npy`` files and ``prepared.json``.
        If it already holds a complete result (a concurrent run), that result is returned.
    logger:
        Where to log progress (defaults to this module's logger).
    added:
        Batches added with ``mnist-flow data add``: their training part is appended to
        the training split (after the validation split and ``train_size``); their
        held-out part is left for the evaluation.
    """
    log = logger or logging.getLogger(__name__)
    raw = read_verified(files)
    train_idx, val_idx = split_indices(raw["train_labels"], params)
    train_images = raw["train_images"][train_idx]
    train_labels = raw["train_labels"][train_idx].astype(np.int64)
    if added is not None and added.ids:
        extra_images, extra_labels = added.load(heldout=False)
        train_images = np.concatenate([train_images, extra_images])
        train_labels = np.concatenate([train_labels, extra_labels])
    mean, std = pixel_stats(train_images) if params.standardize else (0.0, 1.0)
    if params.standardize and std == 0.0:
        raise DataError(f"{files.train_images}: every training pixel has the same value; std is 0")
    preprocessing = {"standardize": params.standardize, "mean": mean, "std": std}
    arrays: dict[str, np.ndarray] = {
        "X_train": prepare_images(train_images, preprocessing),
        "y_train": train_labels,
    }
    if val_idx.size:
        arrays["X_val"] = prepare_images(raw["train_images"][val_idx], preprocessing)
        arrays["y_val"] = raw["train_labels"][val_idx].astype(np.int64)
    arrays["X_test"] = prepare_images(raw["test_images"], preprocessing)
    arrays["y_test"] = raw["test_labels"].astype(np.int64)
    rows, cols = raw["train_images"].shape[1:]
    prepared = PreparedData(
        name=files.name,
        checksums=dict(files.checksums),
        n_classes=files.n_classes,
        image_shape=(int(rows), int(cols)),
        preprocessing=preprocessing,
        paths={name: out_dir / f"{name}.npy" for name in arrays},
        n_train=int(train_labels.size),
        n_val=int(val_idx.size),
        n_test=int(raw["test_labels"].shape[0]),
        params=asdict(params),
        added=added.lineage() if added is not None and added.ids else {},
    )
    prepared = _write_atomically(out_dir, arrays, prepared)
    log.info(
        "prepared %s: %d train, %d validation, %d test examples (mean %.4f, std %.4f) in %s",
        files.name, prepared.n_train, prepared.n_val, prepared.n_test, mean, std, out_dir,
    )  # fmt: skip
    return prepared


def _write_atomically(
    out_dir: Path, arrays: dict[str, np.ndarray], prepared: PreparedData
) -> PreparedData:
    """Write the arrays and metadata into a temporary directory, then rename it to ``out_dir``.

    Returns ``prepared`` with the SHA-256 of each array file.

    A complete result already in ``out_dir`` came from a concurrent run with the same inputs
    and is kept; an incomplete one is replaced.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with write_directory_atomic(
        out_dir, replace_existing=lambda existing: load_prepared(existing) is None
    ) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        digests = {name: file_sha256(tmp / f"{name}.npy") for name in arrays}
        meta = replace(prepared, sha256=digests).to_json()
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2))
    return replace(prepared, sha256=digests)
