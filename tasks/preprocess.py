"""Prefect task: store a dataset's arrays once and a split of them (:mod:`tasks.data.arrays`).

A split already stored with unchanged files is reused, and the task ends ``Cached``.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.cache import reused
from tasks.data.datasets import DatasetFiles, ensure_dir, resolve_cache_dir
from tasks.data.prepare import (
    PreparedData,
    PrepareParams,
    Splits,
    load_prepared,
    pool_dir,
    prepare,
    split_name,
)
from tasks.data.versions import Added

__all__ = ["PreparedData", "Splits", "preprocess"]


@task(name="preprocess", cache_policy=NO_CACHE)
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
    root = ensure_dir(resolve_cache_dir(cache_dir) / "prepared")
    directory = pool_dir(root, files, added)
    prepared = reuse = load_prepared(directory, split_name(params), logger)
    if prepared is not None:
        logger.info("reusing the split %s prepared in %s", prepared.split, directory)
    else:
        prepared = prepare(files, params, root, logger=logger, added=added)
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
    return prepared if reuse is None else reused(prepared, directory)
