"""Training on the base dataset plus added batches: lineage, held-out evaluation, pinning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flows.params import DataParams, RunOptions, TrainOptions
from tasks.data.datasets import get_dataset
from tasks.data.idx import read_idx
from tasks.data.versions import DataStore, add_batch
from tasks.errors import DataGateError
from tests.flows.test_data_cli import write_idx


@pytest.fixture(scope="module")
def added(mnist_dir, tmp_path_factory) -> tuple[Path, str]:
    """A store with one batch of 200 real MNIST training digits (from the end of the file)."""
    tmp = tmp_path_factory.mktemp("added")
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[-200:]
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[-200:]
    pair = [write_idx(tmp / "i.gz", images, 2051), write_idx(tmp / "l.gz", labels, 2049)]
    store = DataStore(tmp / "store")
    version, skipped = add_batch(store, get_dataset("mnist"), [str(p) for p in pair])
    assert skipped == [] and version.n_heldout == 40
    return store.root, version.id


def run(tmp: Path, mnist_dir: Path, store: Path, data_version: str) -> dict:
    from flows.train import mnist_train

    data = DataParams(
        dataset="mnist",
        data_dir=str(mnist_dir),
        cache_dir=str(tmp / "cache"),
        val_size=500,
        train_size=1000,
        data_store=str(store),
        data_version=data_version,
    )
    train = TrainOptions(epochs=1, hidden=[32], augment="none", schedule="constant")
    options = RunOptions(out_dir=str(tmp / f"run-{data_version}"), registry_dir=str(tmp / "reg"))
    summary = mnist_train(data=data, train=train, options=options)
    return json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())


def test_train_uses_the_added_batches_and_records_the_lineage(
    prefect_harness, mnist_dir, added, tmp_path
):
    store, version_id = added
    metrics = run(tmp_path, mnist_dir, store, "latest")
    data = metrics["dataset"]
    assert data["version"] == version_id and data["n_added"] == 200
    assert data["n_train"] == 1000 + 160 and data["n_added_heldout"] == 40
    evaluated = metrics["eval_set"]
    assert (evaluated["n_test"], evaluated["n_heldout"], evaluated["n"]) == (10000, 40, 10040)
    assert evaluated["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert 0.5 < evaluated["heldout_accuracy"] <= 1.0  # a trained model, not chance
    check = metrics["data_check"]
    assert check["passed"] and check["n_new"] == 200 and check["champion_version"] is None
    [registered] = (tmp_path / "reg" / "models").iterdir()
    recorded = json.loads((registered / "metrics.json").read_text())
    assert recorded["data_version"] == version_id and recorded["n_added"] == 200
    [report] = [
        p.read_text() for p in Path(metrics["params"]["options"]["out_dir"]).glob("**/report.md")
    ]
    assert f"{version_id} (200)" in report
    # the figure that decided the promotion leads, named with its set; one figure per label
    assert "| accuracy on test set + 40 held-out added images (decided the promotion) |" in report
    assert "| test accuracy |" not in report and "the same 10,040 images" in report

    pinned = run(tmp_path, mnist_dir, store, "base")  # the same run without the added data
    assert pinned["dataset"]["version"] == "base" and pinned["dataset"]["n_added"] == 0
    assert pinned["dataset"]["n_train"] == 1000 and "eval_set" not in pinned
    assert not np.isclose(pinned["test_loss"], metrics["test_loss"])


def test_an_unknown_data_version_names_the_option(mnist_dir, added, tmp_path, capsys):
    from flows.cli import main

    store, _ = added
    argv = ["train", "--data-dir", str(mnist_dir), "--data-store", str(store)]
    assert main([*argv, "--data-version", "feedbeef"]) == 2
    err = capsys.readouterr().err
    assert "--data-version feedbeef is not a data version of mnist" in err


def test_the_data_gate_stops_a_retraining_on_shuffled_labels(prefect_harness, mnist_dir, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    store = tmp_path / "store"
    champion = run(tmp_path, mnist_dir, store, "latest")  # nothing added yet: the base dataset
    assert champion["dataset"]["version"] == "base" and "data_check" not in champion
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[-400:-200]
    labels = np.random.default_rng(1).permutation(
        read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[-400:-200]
    )
    pair = [write_idx(tmp_path / "i.gz", images, 2051), write_idx(tmp_path / "l.gz", labels, 2049)]
    add_batch(DataStore(store), get_dataset("mnist"), [str(p) for p in pair])
    with pytest.raises(DataGateError, match="shuffled"):
        run(tmp_path, mnist_dir, store, "latest")
    assert len(list((tmp_path / "reg" / "models").iterdir())) == 1  # nothing trained after it
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mnist-data-check"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert "failed" in artifact.data and "shuffled" in artifact.description
