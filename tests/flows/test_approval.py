"""``approve=True``: the run waits before promotion; a person approves or rejects it (API).

A local run pauses (its process waits); a run of a deployment is suspended and runs again
from the start once answered. Either way nothing is recorded before the answer, and every
record of the run (``metrics.json``, ``report.md``, the ``mnist-report`` and
``mnist-promotion`` artifacts, the registry) then states the same outcome.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from flows.params import DataParams, RunOptions, TrainOptions
from tasks.register import PROMOTION_ARTIFACT_KEY
from tasks.registry.history import read_history
from tasks.registry.store import Registry
from tasks.report import REPORT_ARTIFACT_KEY

REASON = "too few sevens in the added data"


def run_parameters(tmp: Path, fashion_dir: Path) -> dict:
    data = DataParams(dataset="fashion-mnist", data_dir=str(fashion_dir),
                      cache_dir=str(tmp / "cache"), val_size=500, train_size=1000)  # fmt: skip
    train = TrainOptions(epochs=1, hidden=[32], augment="none", schedule="constant")
    options = RunOptions(out_dir=str(tmp / "run"), registry_dir=str(tmp / "reg"), approve=True)
    return {"data": data, "train": train, "options": options}


def start_run(tmp: Path, fashion_dir: Path) -> dict:
    """``mnist_train`` with ``approve=True`` in a thread; the dict gets its summary or error."""
    from flows.train import mnist_train

    outcome: dict = {}

    def target() -> None:
        try:
            outcome["summary"] = mnist_train(**run_parameters(tmp, fashion_dir))
        except Exception as exc:  # reported by the test
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=target, daemon=True)
    outcome["thread"].start()
    return outcome


def waiting_run(client, state: str, outcome: dict | None = None, timeout: float = 300):
    """The flow run waiting in ``state`` (``Paused`` or ``Suspended``) with its form saved."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.exceptions import PrefectHTTPStatusError

    deadline = time.monotonic() + timeout
    names = FlowRunFilterStateName(any_=[state])
    while time.monotonic() < deadline:
        assert outcome is None or "error" not in outcome, outcome.get("error")
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=names))
        )
        if runs:
            [run] = runs
            keyset = run.state.state_details.run_input_keyset
            try:
                return run, client.read_flow_run_input(run.id, keyset["description"])
            except PrefectHTTPStatusError:  # the form is saved just after the pause
                pass
        time.sleep(1)
    raise AssertionError(f"the run never reached {state} for approval")


def artifact(client, key: str, flow_run_id) -> object:
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    [found] = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
        )
    )
    return found


def check_records(tmp: Path, run_dir: Path, flow_run_id, approve: bool) -> None:
    """Every record of the run states one outcome: approved or rejected by ada, and why."""
    from prefect.client.orchestration import get_client

    registry = Registry(tmp / "reg")
    [version] = registry.list("fashion-mnist")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = (run_dir / "report.md").read_text()
    with get_client(sync_client=True) as client:
        report_artifact = artifact(client, REPORT_ARTIFACT_KEY, flow_run_id)
        promotion = artifact(client, PROMOTION_ARTIFACT_KEY, flow_run_id)
    assert metrics["registry"]["promoted"] is approve
    assert metrics["registry"]["review"] == {"approved": approve, "by": "ada", "reason": REASON}
    records = [metrics["registry"]["reason"], report, report_artifact.data, promotion.data]
    verdict = "approved" if approve else "rejected"
    for record in records:
        assert f"{verdict} by ada: {REASON}" in record, record[:300]
        assert "in the Prefect UI" not in record
    if approve:
        assert "**Outcome: v0001 registered and promoted to champion, approved by ada.**" in report
        assert registry.champion("fashion-mnist").version == version.version == "v0001"
        [entry] = read_history(registry.root)
        assert entry["action"] == "approved" and f"approved by ada: {REASON}" in entry["reason"]
    else:
        said = f"v0001 registered; its promotion was rejected by ada: {REASON}."
        assert f"**Outcome: {said}**" in report and said in report_artifact.description
        for record in (report, report_artifact.data, promotion.data, promotion.description):
            assert "promoted to champion" not in record
        assert "rejected by ada" in promotion.description
        assert registry.champion("fashion-mnist") is None and read_history(registry.root) == []


@pytest.mark.parametrize("approve", [True, False])
def test_a_person_approves_or_rejects_a_local_run(prefect_harness, fashion_dir, tmp_path, approve):
    from prefect.client.orchestration import get_client

    outcome = start_run(tmp_path, fashion_dir)
    with get_client(sync_client=True) as client:
        run, description = waiting_run(client, "Paused", outcome)
        assert "### Model v0001 (fashion-mnist) would become the champion" in description
        assert "| challenger | v0001 |" in description and "promoted" not in description
        assert not (tmp_path / "run").exists()  # nothing is narrated before the answer
        answer = {"approve": approve, "reviewer": " ada ", "reason": REASON}
        client.resume_flow_run(run.id, run_input=answer)
    outcome["thread"].join(timeout=300)
    assert "summary" in outcome, outcome.get("error")
    check_records(tmp_path, Path(outcome["summary"]["run_dir"]), run.id, approve)


def test_a_deployment_run_is_suspended_and_settles_when_run_again(
    prefect_harness, fashion_dir, tmp_path
):
    """Suspended (no process waits), rejected through the API, run again: every record says so."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import Pause
    from prefect.flow_engine import run_flow

    from flows.train import mnist_train

    params = {
        k: v.model_dump(mode="json") for k, v in run_parameters(tmp_path, fashion_dir).items()
    }
    with get_client(sync_client=True) as client:
        deployment = client.create_deployment(
            client.create_flow(mnist_train), f"approval-{tmp_path.name}"
        )
        created = client.create_flow_run_from_deployment(deployment, parameters=params)
        with pytest.raises(Pause):  # the engine ends the process's part of the run here
            run_flow(mnist_train, flow_run=client.read_flow_run(created.id))
        run, description = waiting_run(client, "Suspended")
        assert run.id == created.id and "would become the champion" in description
        assert not (tmp_path / "run").exists()
        client.resume_flow_run(
            run.id, run_input={"approve": False, "reviewer": "ada", "reason": REASON}
        )
        summary = run_flow(mnist_train, flow_run=client.read_flow_run(run.id))  # a worker's re-run
        assert client.read_flow_run(run.id).state.is_completed()
    assert summary["decision"].startswith("v0001 rejected by ada")
    assert [v.version for v in Registry(tmp_path / "reg").list()] == ["v0001"]  # registered once
    check_records(tmp_path, Path(summary["run_dir"]), run.id, approve=False)


def test_approve_needs_a_server(tmp_path, capsys, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):  # even inside the harness
        assert main(["train", "--approve", "--registry", str(tmp_path)]) == 2
    assert "--approve waits for a person in the Prefect UI" in capsys.readouterr().err
