"""New data retrains: ``data add`` -> event -> the trigger of ``mnist-retrain`` -> a worker runs it.

Against a real server: the deployment is made from a copy of ``prefect.yaml`` whose
``mnist-retrain`` keeps its trigger as written (the dataset and data store templated from
the event) with tiny training parameters added (2,000 real MNIST images, 2 trials x 1
epoch), then ``mnist-flow data add`` adds 200 real digits as an IDX pair. The event it
emits makes the server's automation start a flow run, which ``prefect worker start
--run-once`` executes: the run trains on the added data, publishes ``mnist-data-check``
and records the data version in ``metrics.json``; its model becomes the champion.

The module has a server of its own: on the session's, the event would also trigger the
full-size ``mnist-retrain`` deployed there from ``prefect.yaml``.
"""

from __future__ import annotations

import copy
import http.server
import json
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flows.alerts import AUTOMATION_NAME
from tasks.data.idx import read_idx
from tasks.registry.store import Registry
from tests.flows.test_data_cli import write_idx
from tests.loopback import running

from .conftest import REPO_ROOT, PrefectServer, module_folders, running_server

pytestmark = pytest.mark.slow

POOL = "mnist-pool"


def tiny_prefect_yaml(tmp: Path, mnist_dir: Path, out_dir: Path) -> Path:
    """``prefect.yaml`` with ``mnist-retrain`` alone, small, its trigger's templates unchanged."""
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    [retrain] = [copy.deepcopy(d) for d in config["deployments"] if d["name"] == "mnist-retrain"]
    retrain["parameters"]["search"] = {"trials": 2, "trial_epochs": 1, "n_jobs": 1}
    retrain["parameters"]["options"].update(final_epochs=1, out_dir=str(out_dir))
    retrain["schedules"] = []
    [trigger] = retrain["triggers"]
    trigger["parameters"]["data"].update(data_dir=str(mnist_dir), train_size=2000, val_size=500)
    config["deployments"] = [retrain]
    path = tmp / "prefect.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def mnist_flow(server: PrefectServer, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO_ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_for_flow_run(server: PrefectServer, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.client() as client:
            runs = client.read_flow_runs()
        if runs:
            [run] = runs
            return run
        time.sleep(0.5)
    raise AssertionError(f"no flow run within {timeout:.0f} s of the event")


def wait_for_automation(server: PrefectServer, name: str, timeout: float = 60.0) -> None:
    """Poll until the server lists an automation whose name starts with ``name``.

    A single-process server backed by SQLite loads an automation into its trigger service
    when the automation is committed, so an event sent after it is listed reaches it.
    """
    deadline = time.monotonic() + timeout
    while True:
        with server.client() as client:
            if any(a.name.startswith(name) for a in client.read_automations()):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"no automation {name!r} on the server after {timeout:.0f} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of this module's own (why: the module docstring)."""
    root = tmp_path_factory.mktemp("trigger-server")
    with running_server(root) as server:
        yield module_folders(server, root)


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer, mnist_dir: Path, tmp_path_factory) -> Path:
    """The server with the small ``mnist-retrain``; returns the folder of its run."""
    tmp = tmp_path_factory.mktemp("deployed")
    out_dir = tmp / "runs" / "triggered"
    config = tiny_prefect_yaml(tmp, mnist_dir, out_dir)
    prefect_server.prefect("work-pool", "create", POOL, "--type", "process")
    prefect_server.prefect("--no-prompt", "deploy", "--all", "--prefect-file", str(config),
                           timeout=180)  # fmt: skip
    wait_for_automation(prefect_server, "mnist-retrain")  # the deployment's trigger
    return out_dir


def test_added_data_triggers_a_retraining(
    prefect_server: PrefectServer, deployed: Path, mnist_dir: Path, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    out_dir = deployed

    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")[-200:]
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")[-200:]
    pair = [write_idx(tmp_path / "i.gz", images, 2051), write_idx(tmp_path / "l.gz", labels, 2049)]
    store = tmp_path / "store"
    added = mnist_flow(prefect_server, "data", "add", "--dataset", "mnist",
                       "--data-store", str(store), *map(str, pair))  # fmt: skip
    assert added.returncode == 0, added.stderr
    version_id = added.stdout.split("added data version ")[1].split()[0]

    flow_run = wait_for_flow_run(prefect_server)
    assert flow_run.parameters["data"]["dataset"] == "mnist"
    assert flow_run.parameters["data"]["data_store"] == str(store)
    worker = prefect_server.prefect("worker", "start", "--pool", POOL, "--run-once", timeout=600)
    with prefect_server.client() as client:
        flow_run = client.read_flow_run(flow_run.id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
        )
    assert flow_run.state.is_completed(), worker.describe()
    by_key = {a.key: a for a in artifacts if a.key}
    assert "passed" in by_key["mnist-data-check"].data
    metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["dataset"]["version"] == version_id and metrics["dataset"]["n_added"] == 200
    assert metrics["eval_set"]["n_heldout"] == 40
    champion = Registry(prefect_server.env["MNIST_FLOW_REGISTRY"]).champion("mnist")
    assert champion is not None and metrics["registry"]["promoted"] is True
    assert json.loads((champion.path.parent / "metrics.json").read_text())["data_version"] == (
        version_id
    )


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records the body of every POST (a loopback stand-in for a chat or paging webhook)."""

    received: queue.Queue = queue.Queue()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode("utf-8")
        self.received.put((self.path, self.headers.get("Content-Type"), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


def test_a_failed_retraining_calls_the_webhook(
    prefect_server: PrefectServer, deployed: Path, tmp_path: Path
) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    with running(receiver):
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        installed = mnist_flow(prefect_server, "alerts", "--webhook", url)
        assert installed.returncode == 0, installed.stderr
        wait_for_automation(prefect_server, AUTOMATION_NAME)
        params = {"data": {"dataset": "mnist", "data_dir": str(tmp_path / "missing"),
                           "data_store": str(tmp_path / "store")}}  # fmt: skip
        prefect_server.prefect("deployment", "run", "mnist-pipeline/mnist-retrain",
                               "--params", json.dumps(params))  # fmt: skip
        worker = prefect_server.prefect("worker", "start", "--pool", POOL, "--run-once",
                                        timeout=300)  # fmt: skip
        with prefect_server.client() as client:
            [failed] = [r for r in client.read_flow_runs() if r.state.is_failed()]
        try:
            path, content_type, body = Receiver.received.get(timeout=120)
        except queue.Empty:
            raise AssertionError(
                f"no webhook call; the worker said:\n{worker.describe()}"
            ) from None
    message = json.loads(body)
    assert path == "/hook" and content_type == "application/json"
    assert message["event"] == "prefect.flow-run.Failed" and message["state"] == "Failed"
    assert message["flow_run"] == failed.name and message["flow_run_id"] == str(failed.id)
    # the failure (a data_dir that does not exist, named as the deployment's parameter)
    missing = f"data.data_dir={tmp_path / 'missing'}: no such directory"
    assert missing in message["message"] and message["message"] == failed.state.message
    ui = prefect_server.api_url.removesuffix("/api")
    assert message["url"] == f"{ui}/runs/flow-run/{failed.id}"
    assert message["text"] == (
        f"mnist-flow: retraining run {failed.name} failed: {failed.state.message} {message['url']}"
    )
