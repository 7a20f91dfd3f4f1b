"""What a person meets when operating the project: ``make server`` on another port, a
deployment run given some parameters, run names and tags, a Dask cluster given wrongly or
without workers, and what the UI shows of a run.

``make server PREFECT_PORT=N`` (the Makefile's own command line) serves a UI that calls the
API on port N, and ``make deploy``, ``make worker`` and ``make alerts`` use that port.

Against a real Prefect server, ``prefect deploy`` and a process worker (as in
``test_deployment.py``), and a real ``dask scheduler`` with one ``dask worker`` of two
single-threaded processes, all on loopback:

- a deployment run given only part of ``search`` and ``options`` keeps the deployment's other
  values (its ``margin: 0.001``), runs its trials on the cluster, is named after what it ran,
  and shows every value it used, with where each came from;
- ``mnist-flow run`` with the dashboard's port, an ``http://`` address or without
  ``distributed`` fails in one line before fetching anything; its flow run carries the
  ``mnist-flow`` and ``cli`` tags;
- a deployment run that cannot fetch its data says so in one line naming the parameters a
  deployment takes (``data.mirror``), not the command line's options.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.prefect_db import prefect_home

from .conftest import (
    REPO_ROOT,
    PrefectServer,
    Worker,
    free_port,
    start_logged,
    stop_group,
    tail,
)
from .test_deployment import assert_completed, read_run, run_deployment

pytestmark = pytest.mark.slow

DASK = Path(sys.executable).parent / "dask"
MNIST_FLOW = Path(sys.executable).parent / "mnist-flow"
CLUSTER_TIMEOUT = 120.0


@dataclass(frozen=True)
class DaskCluster:
    """A ``dask scheduler`` and a ``dask worker`` (2 processes x 1 thread) on loopback."""

    address: str  # tcp://127.0.0.1:PORT
    dashboard: str  # http://127.0.0.1:PORT


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    root = tmp_path_factory.mktemp("dask")
    port, web = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    commands = {
        "scheduler": [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                      "--dashboard-address", f"127.0.0.1:{web}"],
        "worker": [DASK, "worker", address, "--nworkers", "2", "--nthreads", "1",
                   "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(root)],
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MNIST_FLOW_"))}
    processes = []
    try:
        for name, command in commands.items():
            processes.append(start_logged(command, REPO_ROOT, env, root / f"{name}.log"))
            if name == "scheduler":
                _wait_for_workers(address, 0, root)
        _wait_for_workers(address, 2, root)
        yield DaskCluster(address, f"http://127.0.0.1:{web}")
    finally:
        for process in reversed(processes):
            stop_group(process)


def _wait_for_workers(address: str, count: int, root: Path) -> None:
    from distributed import Client

    deadline = time.monotonic() + CLUSTER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with Client(address, timeout="5s", set_as_default=False) as client:
                if count:
                    client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            time.sleep(1.0)
    logs = "\n".join(tail(path, 40) for path in sorted(root.glob("*.log")))
    raise RuntimeError(f"no Dask cluster with {count} workers at {address}:\n{logs}")


@pytest.fixture(scope="module")
def partial_run(
    deployed: PrefectServer,
    worker: Worker,
    dask_cluster: DaskCluster,
    fashion_dir,
    tmp_path_factory,
):
    """``mnist-retrain`` given part of ``search`` and ``options``; the rest: the deployment's."""
    out_dir = tmp_path_factory.mktemp("runs") / "partial"
    parameters = {
        "data": {"dataset": "fashion-mnist", "data_dir": str(fashion_dir), "train_size": 3000,
                 "val_size": 1000},
        "search": {"trials": 2, "trial_epochs": 1, "backend": "dask",
                   "dask_address": dask_cluster.address},
        "options": {"final_epochs": 1, "out_dir": str(out_dir)},
    }  # fmt: skip
    run = run_deployment(deployed, worker, parameters)
    flow_run, artifacts, _ = read_run(deployed, run)
    assert_completed(flow_run, run)
    return run, flow_run, artifacts


def table(artifact: Any) -> list[dict[str, Any]]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_the_deployments_defaults_fill_what_a_run_left_out(partial_run) -> None:
    run, flow_run, artifacts = partial_run
    metrics = run.metrics()
    options = metrics["params"]["options"]
    assert options["margin"] == 0.001  # the deployment's (the declared default is 0.0)
    assert (options["final_epochs"], options["final_recipe"], options["seed"]) == (1, "tuned", 0)
    assert metrics["params"]["search"]["trials"] == 2 and len(metrics["history"]) == 1
    # the run's Parameters tab in the UI shows the values used, not only those given
    assert flow_run.parameters["options"]["margin"] == 0.001
    assert flow_run.parameters["options"]["final_epochs"] == 1
    # every value used, with where it came from: in metrics.json, the report and the UI
    used = {row["parameter"]: row for row in metrics["parameters_used"]}
    assert used["options.margin"] == {
        "parameter": "options.margin",
        "value": 0.001,
        "source": "deployment",
    }
    assert used["options.final_epochs"]["source"] == "given"
    assert used["search.halving"]["source"] == "default"
    shown = {row["parameter"]: row for row in table(artifacts["mnist-parameters"])}
    assert shown["options.margin"]["value"] == 0.001
    assert shown["options.margin"]["source"] == "deployment"
    report = (run.out_dir / "report.md").read_text(encoding="utf-8")
    assert "| `options.margin` | 0.001 | deployment |" in report


def test_trials_ran_on_the_cluster_and_the_report_says_where(partial_run, dask_cluster) -> None:
    run, _, artifacts = partial_run
    placement = run.metrics()["search"]["placement"]
    assert placement["backend"] == "dask" and placement["address"] == dask_cluster.address
    assert (placement["workers"], placement["threads"]) == (2, 2)
    where = f"dask at {dask_cluster.address}: 2 workers, 2 threads"
    assert f"Trials ran on {where}." in (run.out_dir / "report.md").read_text(encoding="utf-8")
    assert artifacts["mnist-trials"].description.endswith(f"ran on {where}")


def test_the_run_is_named_after_what_it_ran_ending_with_the_name_printed(partial_run) -> None:
    run, flow_run, _ = partial_run
    assert re.fullmatch(r"[a-z]+-[a-z]+", run.created_as), run.created_as  # Prefect's name
    expected = f"pipeline-fashion-mnist-train3000-dask-manual-seed0-{run.created_as}"
    assert flow_run.name == expected
    assert {"mnist-flow", "retrain", "fashion-mnist", "pipeline"} <= set(flow_run.tags)


def test_the_trial_table_fits_a_screen(partial_run) -> None:
    _, _, artifacts = partial_run
    trials = artifacts["mnist-trials"]
    rows = table(trials)
    assert len(rows) == 2
    columns = list(rows[0])
    assert columns[:2] == ["trial", "lr"] and "best_val_acc" in columns
    for name in columns:
        if name not in ("trial", "best_val_acc"):
            assert rows[0][name] != rows[1][name], f"{name} is the same in every row"
    assert len(columns) <= 12
    assert trials.description.startswith("random search on fashion-mnist: 2 trials, best #")
    assert "epochs=1" in trials.description and "runs" not in trials.description


def test_the_scheduler_serves_its_dashboard(dask_cluster) -> None:
    with urllib.request.urlopen(f"{dask_cluster.dashboard}/status", timeout=30) as response:
        assert response.status == 200
        assert b"bokeh" in response.read().lower()


def mnist_flow(server: PrefectServer, args: list[str], tmp: Path, code: str = "") -> Any:
    """``mnist-flow run ARGS`` against ``server`` (``code``: Python run before the CLI)."""
    command = [str(MNIST_FLOW)]
    if code:
        command = [sys.executable, "-c", f"{code}; from flows.cli import main; sys.exit(main())"]
    env = {**server.env, "MNIST_FLOW_CACHE": str(tmp / "cache")}
    return subprocess.run(
        [*command, "run", "--train-size", "1000", "--out", str(tmp / "out"), *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def assert_one_line(proc: Any, code: int, *needles: str) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mnist-flow: error:")]
    assert proc.returncode == code and len(errors) == 1, proc.stderr[-3000:]
    assert proc.stderr.rstrip().endswith(errors[0]) and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_cluster_mistakes_fail_in_one_line_before_any_work(
    prefect_server: PrefectServer, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    web_port = dask_cluster.dashboard.rsplit(":", 1)[1]
    dashboard = f"tcp://127.0.0.1:{web_port}"
    proc = mnist_flow(prefect_server, ["--backend", "dask", "--dask-address", dashboard], tmp_path)
    assert_one_line(proc, 1, dashboard, "no Dask handshake", "dashboard")
    assert not (tmp_path / "cache").exists()  # nothing fetched
    # the flow run it started: tagged like a deployment's run, named as a CLI run
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with prefect_server.client() as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["cli"]))
        )
    (flow_run,) = [run for run in runs if "-dask-" in run.name]  # others ran on the server
    assert {"mnist-flow", "cli"} <= set(flow_run.tags)
    assert re.fullmatch(r"pipeline-mnist-train1000-dask-cli-seed0-[0-9a-f]{6}", flow_run.name)

    http = dask_cluster.address.replace("tcp://", "http://")
    proc = mnist_flow(prefect_server, ["--backend", "dask", "--dask-address", http], tmp_path)
    assert_one_line(proc, 2, f"--dask-address {http}", "tcp://HOST:8786")

    no_distributed = "import sys; sys.modules['distributed'] = None"
    proc = mnist_flow(prefect_server, ["--backend", "dask"], tmp_path, code=no_distributed)
    assert_one_line(proc, 2, "'distributed' package", ".[dask]")
    assert not (tmp_path / "cache").exists()


def test_a_deployment_run_that_cannot_fetch_names_its_parameters(
    deployed: PrefectServer, worker: Worker, tmp_path: Path
) -> None:
    mirror = f"http://127.0.0.1:{free_port()}/nothing/"
    parameters = {
        "data": {"dataset": "idx", "mirror": mirror, "fetch_retries": 0},
        "options": {"out_dir": str(tmp_path / "out")},
    }
    run = run_deployment(deployed, worker, parameters)
    flow_run, _, _ = read_run(deployed, run)
    assert flow_run.state is not None and flow_run.state.is_failed(), flow_run.state
    message = flow_run.state.message or ""
    assert mirror in message and "data.data_dir=FOLDER" in message and "data.mirror=URL" in message
    assert "--mirror" not in message and "--data-dir" not in message
    assert "\n" not in message and "\\n" not in message


def make(*args: str) -> list[str]:
    """``make ARGS`` with this interpreter's ``bin`` folder, the install step taken as done."""
    return ["make", "-o", ".venv/.installed", *args, f"BIN={Path(sys.executable).parent}"]


def test_make_server_on_another_port_serves_a_ui_calling_that_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MNIST_FLOW_"))}
    # a profile's address of another server must not leak into the UI's settings
    env.update(
        PREFECT_HOME=str(prefect_home(tmp_path / "home")),
        PREFECT_API_URL="http://127.0.0.1:4200/api",
    )
    log = tmp_path / "server.log"
    server = start_logged(make("server", f"PREFECT_PORT={port}"), REPO_ROOT, env, log)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=5) as r:
                    settings = json.loads(r.read())
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, tail(log)
                time.sleep(1.0)
    finally:
        stop_group(server)
    assert settings["api_url"] == api
    planned = subprocess.run(
        make("-n", "deploy", "worker", "alerts", f"PREFECT_PORT={port}", "WEBHOOK=http://x"),
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    commands = [line for line in planned.splitlines() if "prefect " in line or "mnist-flow" in line]
    assert len(commands) == 5, planned
    assert all(f"PREFECT_API_URL={api} " in line for line in commands), planned
