"""Prefect task: split, scale and store a dataset as memory-mappable ``.npy`` files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from nn.errors import ConfigError
from tasks.cache import InputsAndCode, code_version, hash_key
from tasks.data.datasets import DatasetFiles, ensure_dir, resolve_cache_dir
from tasks.data.prepare import PreparedData, PrepareParams, Splits, load_prepared, prepare
from tasks.data.versions import Added

__all__ = ["PreparedData", "Splits", "prepared_dir", "preprocess"]


def prepared_dir(
    files: DatasetFiles, params: PrepareParams, cache_dir: str | None, added: Added | None = None
) -> Path:
    """Return the folder of the arrays prepared from ``files`` (and ``added``) with ``params``.

    Its name hashes the input checksums, the added batches' ids (content hashes), the
    settings and the code version, so the same inputs always map to the same folder.
    """
    parts = {"added": list(added.ids)} if added is not None and added.ids else {}
    key = hash_key(
        code=code_version(),
        checksums=files.fingerprint,
        n_classes=files.n_classes,
        params=asdict(params),
        **parts,
    )
    return resolve_cache_dir(cache_dir) / "prepared" / f"{files.name}-{key[:20]}"


def _params(parameters: dict[str, Any]) -> PrepareParams:
    return PrepareParams(
        val_size=parameters.get("val_size"),
        train_size=parameters.get("train_size"),
        standardize=parameters.get("standardize", True),
        seed=parameters.get("seed", 0),
    )


def _cache_inputs(parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The output folder (input checksums, settings, code version, cache root)."""
    files = parameters.get("files")
    if not isinstance(files, DatasetFiles):
        return None
    try:
        out_dir = prepared_dir(
            files, _params(parameters), parameters.get("cache_dir"), parameters.get("added")
        )
    except ConfigError:
        return None  # the task itself reports the bad setting
    return {"out_dir": out_dir}


def _files_exist(prepared: PreparedData) -> bool:
    """Whether a cached result can be served: its arrays exist and still match their SHA-256."""
    return not prepared.missing() and not prepared.changed()


@task(
    name="preprocess",
    cache_policy=InputsAndCode(inputs=_cache_inputs, files_exist=_files_exist),
)
def preprocess(
    files: DatasetFiles,
    *,
    val_size: int | None = None,
    train_size: int | None = None,
    standardize: bool = True,
    seed: int = 0,
    cache_dir: str | None = None,
    added: Added | None = None,
) -> PreparedData:
    """Split (stratified), scale and store the dataset (plus the ``added`` batches' training
    part); return a handle on the arrays."""
    logger = get_run_logger()
    params = PrepareParams(val_size, train_size, standardize, seed)
    out_dir = prepared_dir(files, params, cache_dir, added)
    if (prepared := load_prepared(out_dir, logger)) is not None:
        logger.info("reusing the arrays prepared in %s", out_dir)
    else:
        ensure_dir(out_dir.parent)
        prepared = prepare(files, params, out_dir, logger=logger, added=added)
    create_table_artifact(
        key=f"data-{files.name}",
        table=[
            {"split": "train", "examples": prepared.n_train},
            {"split": "validation", "examples": prepared.n_val},
            {"split": "test", "examples": prepared.n_test},
        ],
        description=(
            f"{files.name}: {prepared.n_classes} classes, images "
            f"{prepared.image_shape[0]}x{prepared.image_shape[1]}, standardised "
            f"{prepared.preprocessing['standardize']} (mean {prepared.preprocessing['mean']:.4f}, "
            f"std {prepared.preprocessing['std']:.4f}), arrays in {prepared.directory}"
        ),
    )
    return prepared
