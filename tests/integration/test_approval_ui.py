"""A promotion rejected in the Prefect UI's own Resume form: every record says so.

`mnist-flow train --approve` runs against a real server with its UI; Playwright drives the
system's Chromium to the paused run, fills the form (approve left off, a reviewer, a reason)
and submits it, as a person would. Then the run folder, `metrics.json`, the report, the
artifacts, the log and the registry must all state the rejection, by whom and why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import PREFECT

pytestmark = pytest.mark.slow

REVIEWER, REASON = "grace", "too few epochs for production"
BIN = PREFECT.parent


def _paused_run(server, process: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState
    from prefect.client.schemas.filters import FlowRunFilterStateType as ByType
    from prefect.client.schemas.objects import StateType

    only_paused = FlowRunFilter(state=FlowRunFilterState(type=ByType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        with server.client() as client:
            runs = client.read_flow_runs(flow_run_filter=only_paused)
        if runs:
            return str(runs[0].id)
        time.sleep(1)
    raise AssertionError(f"no run paused within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _reject_in_the_ui(url: str, flow_run_id: str, screenshot: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/runs/flow-run/{flow_run_id}")
            page.get_by_role("button", name="Resume").click()
            form = page.locator(".p-modal__card")
            form.get_by_text("would become the champion").wait_for()
            for label, text in (("Reviewer", REVIEWER), ("Reason", REASON)):
                form.locator(".p-label", has_text=label).locator("input, textarea").first.fill(text)
            page.screenshot(path=str(screenshot))
            form.get_by_role("button", name="Submit").click()
            form.wait_for(state="hidden")
        finally:
            browser.close()


def test_a_promotion_rejected_in_the_prefect_ui_is_rejected_in_every_record(
    tmp_path, fashion_dir, shared_server
):
    if shutil.which("chromium") is None:
        raise RuntimeError("this test needs Chromium (Debian: apt-get install chromium)")
    server = shared_server  # with its UI: the run is answered in its Resume form
    ui = server.api_url.removesuffix("/api")
    env = server.env
    out, registry, log = tmp_path / "out", tmp_path / "registry", tmp_path / "train.log"
    command = [
        str(BIN / "mnist-flow"), "train", "--dataset", "fashion-mnist",
        "--data-dir", str(fashion_dir), "--train-size", "2000", "--epochs", "1",
        "--approve", "--out", str(out), "--registry", str(registry),
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            flow_run_id = _paused_run(server, process, log)
            assert not out.exists()  # nothing is written before the answer
            _reject_in_the_ui(ui, flow_run_id, tmp_path / "form.png")
            assert process.wait(timeout=300) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
    said = f"rejected by {REVIEWER}: {REASON}"
    output = log.read_text()
    assert f"registry: v0001 rejected by {REVIEWER} (" in output and said in output
    registry_record = json.loads((out / "metrics.json").read_text())["registry"]
    assert registry_record["promoted"] is False
    assert registry_record["review"] == {"approved": False, "by": REVIEWER, "reason": REASON}
    report = (out / "report.md").read_text()
    assert f"**Outcome: v0001 registered; its promotion was {said}.**" in report
    assert "promoted to champion" not in report
    with server.client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    for key in ("mnist-report", "mnist-promotion"):
        assert said in (str(by_key[key].data) + str(by_key[key].description)).lower(), key
    models = subprocess.run(
        [str(BIN / "mnist-flow"), "models", "--registry", str(registry)],
        capture_output=True, text=True, env=env, check=True,
    ).stdout  # fmt: skip
    assert "v0001" in models and "*" not in models  # registered, never champion
    history = registry / "history.jsonl"
    assert not history.exists() or "v0001" not in history.read_text()
