"""Small real data for the search tests: 2,000 Fashion-MNIST training images, 500 for validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.data.prepare import (
    PreparedData,
    PrepareParams,
    load_prepared,
    pool_dir,
    prepare,
    split_name,
)
from tasks.data.sources import fetch_files


def small_fashion(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    """Prepare (once per test session) a small stratified subset of the real Fashion-MNIST."""
    root = tmp_path_factory.getbasetemp() / "search-fashion"
    out = root / "prepared"
    files = fetch_files("fashion-mnist", data_dir=fashion_dir, cache_dir=root / "cache")
    params = PrepareParams(val_size=500, train_size=2000, seed=0)
    return load_prepared(pool_dir(out, files), split_name(params)) or prepare(files, params, out)
