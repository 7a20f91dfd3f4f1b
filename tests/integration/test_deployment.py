"""The deployed retraining loop end to end: server, work pool, ``prefect deploy``, worker.

What ``make server``, ``make deploy`` and ``make worker`` do, against a temporary
server: create the process work pool, deploy everything in ``prefect.yaml``, trigger
``mnist-pipeline/mnist-retrain`` with tiny parameters (a few thousand real
Fashion-MNIST images, 2 trials x 1 epoch; the deployment's own defaults stay
realistic), and let the session's ``prefect worker start`` execute it. Then, through the
Prefect client: the flow run completed, its artifacts and log lines are on the server,
and the registry (``$MNIST_FLOW_REGISTRY``) holds a champion. A second identical run
scores exactly the same, and a tie never replaces the champion.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from tasks.registry.store import Registry

from .conftest import (
    POOL,
    REPO_ROOT,
    PrefectServer,
    Worker,
    job_environment,
    wait_for_final_state,
)

pytestmark = pytest.mark.slow

FLOW = "mnist-pipeline"
DEPLOYMENT = "mnist-retrain"
DATASET = "fashion-mnist"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EMBEDDED_PNG = re.compile(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


@dataclass(frozen=True)
class DeployedRun:
    """One flow run of the deployment, executed by a worker."""

    flow_run_id: UUID
    out_dir: Path
    worker_log: str  # the tail of the worker's log when the run was over
    created_as: str = ""  # the name ``prefect deployment run`` printed

    def metrics(self) -> dict[str, Any]:
        return json.loads((self.out_dir / "metrics.json").read_text(encoding="utf-8"))


def tiny_parameters(fashion_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Parameters small enough for CI; they replace the deployment's defaults for one run."""
    return {
        "data": {
            "dataset": DATASET,
            "data_dir": str(fashion_dir),
            "train_size": 3000,
            "val_size": 1000,
        },
        "search": {"trials": 2, "trial_epochs": 1, "n_jobs": 2, "backend": "loky"},
        "options": {"seed": 0, "final_epochs": 1, "margin": 0.0, "out_dir": str(out_dir)},
    }


def run_deployment(
    server: PrefectServer, worker: Worker, parameters: dict[str, Any]
) -> DeployedRun:
    """``prefect deployment run`` with ``parameters``; returns when the worker has run it.

    The flow run gets the registry and cache of ``server``'s view as job variables.
    """
    triggered = server.prefect(
        "deployment",
        "run",
        f"{FLOW}/{DEPLOYMENT}",
        "--params",
        json.dumps(parameters),
        "--job-variable",
        job_environment(server),
    )
    match = re.search(r"UUID: ([0-9a-f-]{36})", triggered.output)
    assert match, f"no flow-run id in the output:\n{triggered.describe()}"
    created = re.search(r"Created flow run '([^']+)'", triggered.output)
    flow_run_id = UUID(match.group(1))
    wait_for_final_state(server, flow_run_id, 300, f"the worker said:\n{worker.log_tail()}")
    return DeployedRun(
        flow_run_id=flow_run_id,
        out_dir=Path(parameters["options"]["out_dir"]),
        worker_log=worker.log_tail(),
        created_as=created.group(1) if created else "",
    )


def read_run(server: PrefectServer, run: DeployedRun) -> tuple[Any, dict[str, Any], list[str]]:
    """The flow run, its artifacts by key, and its log messages, from the server."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with server.client() as client:
        flow_run = client.read_flow_run(run.flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.flow_run_id])
            )
        )
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.flow_run_id]))
        )
    return flow_run, {a.key: a for a in artifacts if a.key}, [log.message for log in logs]


def assert_completed(flow_run: Any, run: DeployedRun) -> None:
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        f"flow run {flow_run.name} ended {flow_run.state!r}; the worker said:\n{run.worker_log}"
    )


@pytest.fixture(scope="module")
def registry(prefect_server: PrefectServer) -> Registry:
    """The registry the flow runs use: ``$MNIST_FLOW_REGISTRY`` of the worker's environment."""
    return Registry(prefect_server.env["MNIST_FLOW_REGISTRY"])


@pytest.fixture(scope="module")
def first_run(
    deployed: PrefectServer, worker: Worker, fashion_dir: Path, tmp_path_factory
) -> DeployedRun:
    out_dir = tmp_path_factory.mktemp("runs") / "first"
    return run_deployment(deployed, worker, tiny_parameters(fashion_dir, out_dir))


@pytest.fixture(scope="module")
def second_run(
    first_run: DeployedRun,
    deployed: PrefectServer,
    worker: Worker,
    fashion_dir: Path,
    tmp_path_factory,
) -> DeployedRun:
    out_dir = tmp_path_factory.mktemp("runs") / "second"
    return run_deployment(deployed, worker, tiny_parameters(fashion_dir, out_dir))


def test_deployments_keep_the_defaults_of_prefect_yaml(deployed: PrefectServer) -> None:
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    with deployed.client() as client:
        deployments = {d.name: d for d in client.read_deployments()}
    assert sorted(deployments) == sorted(spec["name"] for spec in config["deployments"])
    for spec in config["deployments"]:
        deployment = deployments[spec["name"]]
        assert deployment.work_pool_name == POOL == spec["work_pool"]["name"]
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.parameters == spec.get("parameters", {})
        crons = [s.schedule.cron for s in deployment.schedules]
        assert crons == [s["cron"] for s in spec.get("schedules", [])]
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
        ]


def test_first_run_completes_with_report_and_becomes_champion(
    deployed: PrefectServer, first_run: DeployedRun, registry: Registry
) -> None:
    flow_run, artifacts, logs = read_run(deployed, first_run)
    assert_completed(flow_run, first_run)
    assert flow_run.parameters["search"]["trials"] == 2  # the run's, not the deployment's 8

    # the report, readable in the UI: plots embedded as small PNGs, trials, decision
    keys = {"mnist-report", "mnist-trials", "mnist-train-progress", "mnist-promotion"}
    assert keys <= artifacts.keys()
    report = artifacts["mnist-report"]
    assert report.type == "markdown"
    images = EMBEDDED_PNG.findall(report.data)
    assert len(images) == 7, f"expected 7 embedded plots, found {len(images)}"
    for encoded in images:
        assert len(encoded) <= 60_000
        assert base64.b64decode(encoded).startswith(PNG_SIGNATURE)
    assert "promoted to champion" in report.data
    assert re.search(r"^\|\s*trial\s*\|", report.data, re.MULTILINE), "no trial table"
    trials = artifacts["mnist-trials"]
    assert trials.type == "table"
    rows = json.loads(trials.data) if isinstance(trials.data, str) else trials.data
    assert len(rows) == 2
    promotion = artifacts["mnist-promotion"]
    assert promotion.type == "markdown" and "promoted to champion" in promotion.data

    # per-trial and per-epoch lines reached the server's log view
    assert sum(bool(re.search(r"\btrial [12]/2\b", m)) for m in logs) == 2, logs
    assert any(re.search(r"\bepoch 1/1\b", m) for m in logs), logs

    # the registry has a champion, the model of this run
    metrics = first_run.metrics()
    champion = registry.champion(DATASET)
    assert champion is not None
    assert champion.version == "v0001"
    assert champion.test_accuracy == pytest.approx(metrics["test_accuracy"], abs=0)
    assert metrics["test_accuracy"] > 0.3  # ten classes: chance is 0.1
    assert metrics["registry"]["promoted"] is True
    assert f"| challenger | v0001 | {metrics['test_accuracy']:.4f} |" in promotion.data
    assert (first_run.out_dir / "report.md").is_file()


def test_identical_second_run_does_not_replace_the_champion(
    deployed: PrefectServer, first_run: DeployedRun, second_run: DeployedRun, registry: Registry
) -> None:
    flow_run, artifacts, _ = read_run(deployed, second_run)
    assert_completed(flow_run, second_run)

    first, second = first_run.metrics(), second_run.metrics()
    assert second["test_accuracy"] == first["test_accuracy"]  # same data, parameters, seed
    assert second["registry"]["promoted"] is False
    assert second["registry"]["champion_version"] == "v0001"
    assert second["registry"]["already_registered"] is True  # same weights: registered once
    assert "same weights as v0001" in second["registry"]["reason"]

    versions = registry.list(DATASET)
    assert [(v.version, v.is_champion) for v in versions] == [("v0001", True)]
    assert registry.champion(DATASET).version == "v0001"
    assert "not promoted" in artifacts["mnist-report"].data
