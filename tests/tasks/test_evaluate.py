"""The evaluate task in a flow gives what the plain scoring function gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import flow

from nn.io import save_model
from nn.model import MLP
from tasks.data.sources import fetch_files
from tasks.evaluate import Evaluation, evaluate_model
from tasks.scoring.testset import score_model


def test_task_in_a_flow(prefect_harness, fashion_dir: Path, tmp_path: Path) -> None:
    files = fetch_files("fashion-mnist", data_dir=str(fashion_dir), cache_dir=tmp_path, mirrors=[])
    model_path = tmp_path / "untrained.npz"
    raw_pre = {"standardize": False, "mean": 0.0, "std": 1.0}
    save_model(
        model_path, MLP.create((784, 10), rng=np.random.default_rng(0)), {"preprocessing": raw_pre}
    )

    @flow
    def evaluation_flow() -> Evaluation:
        return evaluate_model(str(model_path), files, max_errors=8)

    result = evaluation_flow()
    assert result.images.shape == (8, 28, 28) and np.all(result.y_true != result.y_pred)
    plain = score_model(model_path, files, 8)
    assert result.metrics == plain.metrics and result.metrics["n_test"] == 10_000
    np.testing.assert_array_equal(result.indices, plain.indices)
