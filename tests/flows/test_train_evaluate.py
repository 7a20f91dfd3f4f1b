"""``mnist_train`` reproduces plain SGD exactly; ``mnist_evaluate`` re-scores the saved model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from flows.cli import build_parser
from flows.cli.commands import train_options
from flows.params import DataParams, RunOptions, TrainParams
from nn.errors import ModelFileError
from nn.io import load_model
from nn.model import MLP
from nn.train import TrainConfig, train
from tasks.data.prepare import PrepareParams, prepare
from tasks.data.sources import fetch_files
from tasks.settings import train_params

SEED = 3


@pytest.fixture(scope="module")
def trained(prefect_harness, fashion_dir, tmp_path_factory):
    from flows.train import mnist_train

    tmp = tmp_path_factory.mktemp("train")
    data = DataParams(
        dataset="fashion-mnist",
        data_dir=str(fashion_dir),
        cache_dir=str(tmp / "cache"),
        val_size=500,
        train_size=1000,
    )
    # Plain SGD as the command line spells it: every other option from the recipe.
    argv = ["train", "--dataset", "fashion-mnist", "--epochs", "2", "--lr", "0.05"]
    argv += ["--momentum", "0.5", "--hidden", "32", "--augment", "none"]
    argv += ["--schedule", "constant", "--weight-decay", "0"]
    given = train_options(build_parser().parse_args(argv))
    params = TrainParams(
        epochs=2,
        lr=0.05,
        momentum=0.5,
        hidden=[32],
        augment="none",
        schedule="constant",
        weight_decay=0.0,
    )
    resolved = train_params("fashion-mnist", "tuned", given.model_dump(exclude={"recipe"}))
    assert resolved == params.model_dump()  # the recipe's warm-up and Nesterov went with cosine
    options = RunOptions(
        seed=SEED, out_dir=str(tmp / "run"), registry_dir=str(tmp / "registry"), threads=1
    )
    summary = mnist_train(data=data, train=given, options=options)
    return {"tmp": tmp, "data": data, "params": given, "summary": summary}


def test_plain_sgd_is_reproduced_exactly(trained, fashion_dir):
    tmp = trained["tmp"]
    files = fetch_files("fashion-mnist", data_dir=fashion_dir, cache_dir=tmp / "ref-cache")
    prepared = prepare(
        files, PrepareParams(val_size=500, train_size=1000, seed=SEED), tmp / "ref-prepared"
    )
    splits = prepared.load()
    rng = np.random.default_rng(SEED)
    reference = MLP.create((784, 32, 10), rng=rng)
    config = TrainConfig(epochs=2, lr=0.05, momentum=0.5, batch_size=128, schedule="constant")
    with threadpool_limits(1, user_api="blas"):  # --threads 1: same summation order as the task
        train(
            reference,
            splits.X_train,
            splits.y_train,
            config,
            rng=rng,
            X_val=splits.X_val,
            y_val=splits.y_val,
        )
    model, meta = load_model(Path(trained["summary"]["run_dir"]) / "model.npz")
    assert model.layer_sizes == (784, 32, 10)
    for got, want in zip(
        model.weights + model.biases, reference.weights + reference.biases, strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert meta["training"]["schedule"] == "constant" and meta["augment"]["kind"] == "none"
    assert meta["seed"] == SEED


def test_train_run_writes_metrics_with_its_params(trained):
    run_dir = Path(trained["summary"]["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["kind"] == "train" and "search" not in metrics
    assert metrics["params"]["train"]["lr"] == 0.05
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert set(metrics["timings"]) >= {"fetch", "preprocess", "train", "evaluate", "report"}


def test_evaluate_rescoring_the_champion_gives_the_same_metrics(trained, tmp_path):
    from flows.evaluate import mnist_evaluate

    data = trained["data"]
    summary = mnist_evaluate(
        data=data, out_dir=str(tmp_path / "ev"), registry_dir=str(trained["tmp"] / "registry")
    )
    assert summary["test_accuracy"] == trained["summary"]["test_accuracy"]
    assert summary["model_path"].startswith(str(trained["tmp"] / "registry"))
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["kind"] == "evaluate"
    assert metrics["test_loss"] == pytest.approx(trained["summary"]["test_loss"])
    assert (tmp_path / "ev" / "report.md").is_file()


def test_a_deleted_cached_model_is_trained_again(trained):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.train import mnist_train

    tmp = trained["tmp"]
    (cached,) = (tmp / "cache" / "models").glob("*.npz")
    cached.unlink()
    options = RunOptions(seed=SEED, out_dir=str(tmp / "again"), registry_dir=str(tmp / "registry"))
    state = mnist_train(
        data=trained["data"], train=trained["params"], options=options, return_state=True
    )
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    states = {run.name: run.state.name for run in runs}
    train_states = [v for k, v in states.items() if k.startswith("train-final-")]
    assert train_states == ["Completed"], states  # not a cache hit on a missing file
    assert [v for k, v in states.items() if k.startswith("preprocess-")] == ["Cached"], states
    assert cached.is_file()
    assert state.result()["test_accuracy"] == trained["summary"]["test_accuracy"]


def test_a_failing_flow_raises_the_original_error(trained, tmp_path):
    from flows.evaluate import mnist_evaluate

    with pytest.raises(ModelFileError, match=r"nothing\.npz"):
        mnist_evaluate(
            model_path=str(tmp_path / "nothing.npz"),
            data=trained["data"],
            out_dir=str(tmp_path / "ev"),
        )
