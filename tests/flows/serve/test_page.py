"""The page in a real browser: draw a digit, see a label and a version, correct, submit.

Playwright drives the system's Chromium (the Debian package; `.ci/run` installs it): no
browser is downloaded. `mnist-flow serve` runs as a user would start it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tasks.registry.store import Registry
from tests.flows.serve.conftest import register

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered /healthz")


@pytest.fixture
def server(trained, tmp_path):
    registry = tmp_path / "registry"
    register(Registry(registry), trained.first, 0.95)
    store = tmp_path / "store"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    process = subprocess.Popen(
        [
            str(BIN / "mnist-flow"),
            "serve",
            "--registry",
            str(registry),
            "--data-store",
            str(store),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, store
    finally:
        process.terminate()
        process.wait(timeout=20)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("the browser test needs Chromium (Debian: apt-get install chromium)")
    return path


def draw_seven(page, box) -> None:
    """A 7 drawn with the mouse: a top bar, then a diagonal stroke down to the left."""
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.25 * w, y + 0.2 * h)
    page.mouse.down()
    for t in range(11):
        page.mouse.move(x + (0.25 + 0.5 * t / 10) * w, y + 0.2 * h)
    for t in range(1, 16):
        page.mouse.move(x + (0.75 - 0.3 * t / 15) * w, y + (0.2 + 0.65 * t / 15) * h)
    page.mouse.up()


def test_draw_predict_correct_and_submit_in_a_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, store = server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.goto(url)
            expect(page.locator("#model")).to_contain_text("v0001")
            draw_seven(page, page.locator("#pad").bounding_box())
            expect(page.locator("#guess")).to_have_text(
                __import__("re").compile(r"^[0-9]$"), timeout=15_000
            )
            expect(page.locator("#bars .bar")).to_have_count(3)
            expect(page.locator("#model")).to_contain_text("test accuracy 95.00 %")
            page.select_option("#label", "7")
            page.click("#correct")
            expect(page.locator("#waiting")).to_have_text("1")
            page.on("dialog", lambda dialog: dialog.accept())
            page.click("#submit")
            expect(page.locator("#submitted")).to_contain_text("added data version", timeout=30_000)
            expect(page.locator("#waiting")).to_have_text("0")
            shown = page.locator("#submitted").inner_text().split()[3]
            page.screenshot(path=str(tmp_path / "page.png"))
        finally:
            browser.close()
    listing = subprocess.run(
        [str(BIN / "mnist-flow"), "data", "list", "--data-store", str(store)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown in listing.stdout
    assert "7:1" in listing.stdout  # one image, of class 7
