"""``mnist_pipeline`` end to end on a few thousand real Fashion-MNIST images, then re-run cached."""

from __future__ import annotations

import json
import math
from pathlib import Path
from uuid import UUID

import numpy as np
import pytest

from flows.params import DataParams, PipelineOptions, SearchParams
from nn.io import load_model

HISTORY_KEYS = {
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
}
PREPROCESS = (  # the search's split, then every training image for the final model
    "preprocess-fashion-mnist-train3000-val1000",
    "preprocess-fashion-mnist-train3000-val0",
)
# Registration comes before the report: the records narrate the settled decision.
STEPS = ("fetch", "preprocess", "search", "train", "evaluate", "register", "report")


def task_states(flow_run_id: UUID) -> dict[str, str]:
    """Task-run name -> state name of one flow run, read back through the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name: run.state.name for run in runs}


def artifacts(flow_run_id: UUID) -> dict[str, object]:
    """Artifact key -> artifact of one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found if a.key}


def state_named(states: dict[str, str], prefix: str) -> str:
    matches = [state for name, state in states.items() if name.startswith(prefix)]
    assert len(matches) == 1, (prefix, states)
    return matches[0]


@pytest.fixture(scope="module")
def small_run(prefect_harness, fashion_dir, tmp_path_factory):
    """Two pipeline runs with identical inputs (the second should be all cache hits)."""
    from flows.pipeline import mnist_pipeline

    tmp = tmp_path_factory.mktemp("pipeline")
    data = DataParams(
        dataset="fashion-mnist",
        data_dir=str(fashion_dir),
        cache_dir=str(tmp / "cache"),
        val_size=1000,
        train_size=3000,
    )
    # A narrow space keeps the two trials quick and the final model sane on 3000 images.
    space = {"hidden": 64, "batch_size": 128, "lr": "0.05:0.2:log", "schedule": "cosine"}
    search = SearchParams(trials=2, trial_epochs=1, n_jobs=1, space=space)

    def run(name: str, final_epochs: int = 2):
        options = PipelineOptions(
            final_epochs=final_epochs,
            out_dir=str(tmp / name),
            registry_dir=str(tmp / "registry"),
        )
        state = mnist_pipeline(data=data, search=search, options=options, return_state=True)
        assert state.is_completed(), state.message
        return state.state_details.flow_run_id, state.result()

    first = run("first")
    second = run("second")
    third = run("third", final_epochs=3)
    return {"tmp": tmp, "first": first, "second": second, "third": third}


def test_every_output_file_exists_and_parses(small_run):
    _, summary = small_run["first"]
    run_dir = Path(summary["run_dir"])
    assert run_dir == small_run["tmp"] / "first"
    for name in ("model.npz", "model.json", "metrics.json", "report.md"):
        assert (run_dir / name).is_file(), name
    pngs = sorted(p.name for p in run_dir.glob("*.png"))
    assert {"curves.png", "confusion_matrix.png", "search.png"} <= set(pngs), pngs
    report = (run_dir / "report.md").read_text()
    assert "**Outcome: v0001 registered and promoted to champion.**" in report
    assert "curves.png" in report
    # the recipe's settings every trial used are named once above the trial table, not "—"
    [shared] = [line for line in report.splitlines() if line.startswith("Every trial: ")]
    assert "momentum 0.9, Nesterov True" in shared and "schedule cosine" in shared, shared
    assert "beta1" not in report and "step_size" not in report  # not used by SGD with cosine
    json.loads((run_dir / "model.json").read_text())


def test_metrics_json_has_every_key_with_sane_values(small_run):
    _, summary = small_run["first"]
    metrics = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    assert 0.6 < metrics["test_accuracy"] <= 1.0  # chance is 0.1
    assert metrics["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert 0.0 < metrics["test_loss"] < 2.0
    assert len(metrics["per_class"]) == 10
    for row in metrics["per_class"]:
        assert {"class", "precision", "recall", "f1"} <= set(row)
        assert all(0.0 <= row[k] <= 1.0 for k in ("precision", "recall", "f1"))
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert np.trace(cm) / cm.sum() == pytest.approx(metrics["test_accuracy"])
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    for record in metrics["history"]:  # the final model trains on every training image
        assert set(record) >= HISTORY_KEYS
        assert record["val_loss"] is None and math.isfinite(record["train_loss"])
    assert metrics["params"]["train"]["epochs"] == 2
    assert metrics["params"]["data"]["train_size"] == 3000
    assert metrics["params"]["search"]["trials"] == 2
    assert metrics["dataset"]["name"] == "fashion-mnist"
    assert set(metrics["dataset"]["checksums"]) == {
        "train_images",
        "train_labels",
        "test_images",
        "test_labels",
    }
    assert len(metrics["search"]["trials"]) == 2
    best = metrics["search"]["best"]
    assert best["val_accuracy"] == max(t["best_val_accuracy"] for t in metrics["search"]["trials"])
    # the space fixes 64 hidden units: the recipe (300) cannot be a trial, and the run says so
    choice = metrics["search"]["choice"]
    assert choice["recipe_excluded"] == "hidden=300 is outside 64" and choice["reference"] is None
    report = (Path(summary["run_dir"]) / "report.md").read_text()
    assert "**The search space leaves the dataset's recipe out** (hidden=300" in report
    assert "retrained from the start on every training image" in report
    final = metrics["params"]["train"]
    assert final["lr"] == pytest.approx(best["params"]["lr"])
    # the fashion-mnist recipe on top of the un-augmented trials (final_recipe="tuned")
    # (its one warm-up epoch dropped: more than a quarter of the 2 final epochs)
    assert (final["augment"], final["schedule"], final["warmup_epochs"]) == ("affine", "cosine", 0)
    assert final["patience"] is None and metrics["params"]["options"]["final_recipe"] == "tuned"
    assert set(STEPS) <= set(metrics["timings"])
    assert all(v >= 0 for v in metrics["timings"].values())
    assert metrics["timings"]["total"] >= sum(metrics["timings"][s] for s in STEPS) * 0.99
    assert set(metrics["versions"]) == {"python", "numpy", "prefect", "package"}
    assert metrics["seed"] == 0
    assert metrics["registry"]["promoted"] is True  # first model of an empty registry


def test_saved_model_reproduces_the_reported_accuracy(small_run, fashion_dir):
    from tasks.data.idx import read_idx
    from tasks.data.scaling import prepare_images

    _, summary = small_run["first"]
    model, meta = load_model(Path(summary["run_dir"]) / "model.npz")
    images = read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz")
    X = prepare_images(images, meta["preprocessing"])
    accuracy = float(np.mean(model.predict(X) == labels))
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-9)
    assert meta["dataset"]["name"] == "fashion-mnist"


def test_artifacts_are_published_with_stable_keys(small_run):
    flow_run_id, summary = small_run["first"]
    found = artifacts(flow_run_id)
    assert {"mnist-report", "mnist-trials", "mnist-train-progress"} <= set(found), set(found)
    assert found["mnist-report"].type == "markdown"
    from tasks.outputs.report import percent

    accuracy = percent(summary["test_accuracy"])  # the run's own figure, shown in the UI
    said = "v0001 registered and promoted to champion."  # the outcome first
    assert found["mnist-report"].description.startswith(f"{said} Test accuracy {accuracy};")
    assert found["mnist-report"].data.count("data:image/png;base64,") == 7  # every plot inline
    assert found["mnist-trials"].type == "table"
    assert found["mnist-train-progress"].type == "progress"
    assert float(found["mnist-train-progress"].data) == pytest.approx(100.0)


def test_identical_rerun_reuses_every_cached_step(small_run):
    first_id, first = small_run["first"]
    second_id, second = small_run["second"]
    before, after = task_states(first_id), task_states(second_id)
    for prefix in (*PREPROCESS, "train-final-"):
        assert state_named(before, prefix) == "Completed", before
        assert state_named(after, prefix) == "Cached", after
    assert state_named(after, "fetch-") == "Completed"  # a --data-dir is verified in place
    # The search task always runs; its finished trials come from the trial store.
    metrics = [json.loads(Path(r["run_dir"], "metrics.json").read_text()) for r in (first, second)]
    assert [t["cached"] for t in metrics[0]["search"]["trials"]] == [False, False]
    assert [t["cached"] for t in metrics[1]["search"]["trials"]] == [True, True]
    assert metrics[1]["search"]["best"] == metrics[0]["search"]["best"]
    assert second["test_accuracy"] == first["test_accuracy"]
    assert Path(second["run_dir"], "model.npz").read_bytes() == (
        Path(first["run_dir"], "model.npz").read_bytes()
    )
    assert metrics[1]["registry"]["promoted"] is False  # a tie never replaces the champion


def test_changing_final_epochs_retrains_only_the_final_model(small_run):
    third_id, third = small_run["third"]
    states = task_states(third_id)
    assert set(states) >= {
        "search-halving-2x1ep",
        "evaluate-fashion-mnist",
        "register-fashion-mnist",
        "report-fashion-mnist",
    }
    for prefix in PREPROCESS:
        assert state_named(states, prefix) == "Cached", states
    assert state_named(states, "train-final-") == "Completed", states
    metrics = json.loads((Path(third["run_dir"]) / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]


def test_flow_and_task_runs_are_tagged_with_dataset_and_kind(small_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id, _ = small_run["first"]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    # kind, dataset, training images, backend, trigger (called from Python), seed, id
    name = f"pipeline-fashion-mnist-train3000-loky-local-seed0-{flow_run_id.hex[-6:]}"
    assert flow_run.name == name
    assert {"fashion-mnist", "pipeline"} <= set(flow_run.tags)
    assert task_runs and all({"fashion-mnist", "pipeline"} <= set(t.tags) for t in task_runs)
