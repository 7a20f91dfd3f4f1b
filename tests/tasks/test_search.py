"""Tests of the Prefect task ``random_search``: logs, the trial-table artifact, the result."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow

from tasks.data.prepare import PreparedData
from tasks.search import ARTIFACT_KEY, format_trial, random_search, trial_table
from tasks.tuning.runner import SearchResult
from tasks.tuning.trials import TrialResult
from tests.tasks.search_data import small_fashion

PARAMS = {"lr": 0.031, "batch_size": 64, "momentum": 0.9, "nesterov": True,
          "weight_decay": 0.0, "schedule": "cosine", "decay": 0.5, "hidden": 300,
          "optimizer": "sgd", "augment": "shift"}  # fmt: skip


def test_format_trial_lines() -> None:
    ok = TrialResult(3, 0, 1, 0, PARAMS, "ok", [0.9123], [0.3], 0.9123, 3.14)
    assert format_trial(ok, 7, 20) == (
        "trial 7/20 (#3, 1 epoch): lr=0.031 batch=64 optimizer=sgd momentum=0.9 nesterov=on "
        "wd=0 schedule=cosine decay=0.5 hidden=300 augment=shift -> val_acc=0.9123 in 3.1 s"
    )
    bad = TrialResult(4, 0, 3, 1, PARAMS, "diverged", [], [], None, 0.4, "loss became nan",
                      cached=True)  # fmt: skip
    line = format_trial(bad, 8, 20)
    assert line.startswith("trial 8/20 (#4, round 2, 3 epochs): lr=0.031")
    assert line.endswith("-> diverged: loss became nan in 0.4 s (from the trial store)")


def test_trial_table_has_plain_cells() -> None:
    trials = [
        TrialResult(0, 0, 1, 0, PARAMS, "ok", [0.91234567], [0.312345], 0.91234567, 3.14159),
        TrialResult(1, 0, 1, 0, {**PARAMS, "lr": 9.0}, "diverged", [], [], None, 0.5, "nan"),
    ]
    result = SearchResult([t.to_dict() for t in trials], PARAMS, 0.912, 0, 4.0, 2, 0)
    rows = trial_table(result)
    assert rows[0]["best_val_acc"] == 0.9123 and rows[0]["seconds"] == 3.14
    assert rows[0]["lr"] == 0.031 and rows[0]["round"] == 1 and rows[0]["error"] == ""
    assert rows[1]["status"] == "diverged" and rows[1]["best_val_acc"] is None
    for row in rows:
        for value in row.values():
            assert value is None or type(value) in (int, float, str, bool), (row, value)


def read_trial_artifacts(flow_run_id: UUID) -> list:
    """The trial tables published by one flow run (other tests publish under the same key)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )


def test_random_search_task_logs_publishes_and_resumes(
    prefect_harness: None,
    fashion_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data: PreparedData = small_fashion(fashion_dir, tmp_path_factory)
    seen: list[int] = []

    @flow
    def search_flow() -> SearchResult:
        return random_search(
            data,
            {"trials": 3, "trial_epochs": 1, "n_jobs": 2},
            seed=5,
            space_overrides={"hidden": 32, "lr": "0.01:0.1:log", "augment": "none,shift"},
            cache_dir=str(tmp_path),
            on_trial=lambda result, done, total: seen.append(done),
        )

    with caplog.at_level(logging.INFO):
        state = search_flow(return_state=True)
    result = state.result()
    assert sorted(seen) == [1, 2, 3]
    assert len(result.trials) == 3 and result.n_trained == 3
    assert result.best_params == result.trials[result.best_trial]["params"]
    assert {t["params"]["augment"] for t in result.trials} <= {"none", "shift"}
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    assert len(lines) == 3 and all("val_acc=" in line and "hidden=32" in line for line in lines)
    assert any(r.getMessage().startswith("best trial #") for r in caplog.records)
    assert len(list((tmp_path / "trials").glob("*.json"))) == 3

    (artifact,) = read_trial_artifacts(state.state_details.flow_run_id)
    table = artifact.data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [row["trial"] for row in rows] == [0, 1, 2]
    # the tuned parameters come first; the columns equal in every row are in the caption
    assert list(rows[0])[:2] == ["trial", "lr"]
    assert "status" not in rows[0] and "hidden" not in rows[0]
    assert artifact.description.startswith("random search on ")
    assert "3 trials, best #" in artifact.description
    assert "status=ok" in artifact.description and "hidden=32" in artifact.description
    assert artifact.description.endswith("; ran on loky on this machine: 2 worker processes")

    again = search_flow()  # same command again: everything comes from the store
    assert (again.n_trained, again.n_cached) == (0, 3)
    assert again.best_params == result.best_params
