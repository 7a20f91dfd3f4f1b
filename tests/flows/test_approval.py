"""``approve=True``: the run pauses before promotion; a person approves or rejects it (API)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from flows.params import DataParams, RunOptions, TrainOptions
from tasks.registry.history import read_history
from tasks.registry.store import Registry


def start_run(tmp: Path, fashion_dir: Path) -> dict:
    """``mnist_train`` with ``approve=True`` in a thread; the dict gets its summary or error."""
    from flows.train import mnist_train

    data = DataParams(dataset="fashion-mnist", data_dir=str(fashion_dir),
                      cache_dir=str(tmp / "cache"), val_size=500, train_size=1000)  # fmt: skip
    train = TrainOptions(epochs=1, hidden=[32], augment="none", schedule="constant")
    options = RunOptions(out_dir=str(tmp / "run"), registry_dir=str(tmp / "reg"), approve=True)
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["summary"] = mnist_train(data=data, train=train, options=options)
        except Exception as exc:  # reported by the test
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=target, daemon=True)
    outcome["thread"].start()
    return outcome


def answer_when_paused(approve: bool, reason: str, outcome: dict, timeout: float = 300) -> str:
    """Wait for the paused flow run, check its form shows both scores, answer it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.exceptions import PrefectHTTPStatusError

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert "error" not in outcome, outcome.get("error")
            paused = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Paused"]))
                )
            )
            if paused:
                [run] = paused
                keyset = run.state.state_details.run_input_keyset
                try:
                    description = client.read_flow_run_input(run.id, keyset["description"])
                except PrefectHTTPStatusError:  # the form is saved just after the pause
                    time.sleep(1)
                    continue
                assert "| challenger | v0001 |" in description
                assert "Approve this promotion?" in description
                client.resume_flow_run(run.id, run_input={"approve": approve, "reason": reason})
                return description
            time.sleep(1)
    raise AssertionError("the run never paused for approval")


@pytest.mark.parametrize("approve", [True, False])
def test_a_person_approves_or_rejects_the_promotion(
    prefect_harness, fashion_dir, tmp_path, approve
):
    outcome = start_run(tmp_path, fashion_dir)
    answer_when_paused(approve, "checked the confusion matrix", outcome)
    outcome["thread"].join(timeout=300)
    assert "summary" in outcome, outcome.get("error")
    registry = Registry(tmp_path / "reg")
    [version] = registry.list("fashion-mnist")
    metrics = json.loads((Path(outcome["summary"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["registry"]["promoted"] is approve
    verdict = "approved" if approve else "rejected"
    assert f"{verdict}: checked the confusion matrix" in metrics["registry"]["reason"]
    if approve:
        assert registry.champion("fashion-mnist").version == version.version == "v0001"
        [entry] = read_history(registry.root)
        assert entry["action"] == "approved" and "confusion matrix" in entry["reason"]
    else:
        assert registry.champion("fashion-mnist") is None and read_history(registry.root) == []


def test_approve_needs_a_server(tmp_path, capsys, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # even inside the harness
        assert main(["train", "--approve", "--registry", str(tmp_path)]) == 2
    assert "--approve waits for a person in the Prefect UI" in capsys.readouterr().err
