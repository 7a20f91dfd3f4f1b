"""Small real data for the search tests: 2,000 Fashion-MNIST training images, 500 for validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.data.prepare import PreparedData, PrepareParams, load_prepared, prepare
from tasks.data.sources import fetch_files


def small_fashion(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    """Prepare (once per test session) a small stratified subset of the real Fashion-MNIST."""
    root = tmp_path_factory.getbasetemp() / "search-fashion"
    out = root / "prepared"
    existing = load_prepared(out)
    if existing is not None:
        return existing
    files = fetch_files("fashion-mnist", data_dir=fashion_dir, cache_dir=root / "cache")
    return prepare(files, PrepareParams(val_size=500, train_size=2000, seed=0), out)
