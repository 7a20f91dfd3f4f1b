"""``mnist-flow serve --workers 2``: the real command in a subprocess, on a free port.

Each request below opens a connection of its own, so that the kernel hands them to either
worker: what a worker keeps in memory (the model, the pending corrections) must agree with
what the other one does.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.cli import main
from flows.cli.serve import listening_socket
from tasks.registry.store import Registry
from tests.flows.serve.conftest import register
from tests.flows.serve.test_api import dark_on_white, png

BOUNDARY = "----mnist-flow-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, fields: dict | None = None) -> tuple[int, dict]:
    """One request on a new connection: the status and the JSON answer."""
    body, headers = b"", {}
    if fields:
        parts = []
        for name, value in fields.items():
            if isinstance(value, bytes):
                head = f'name="{name}"; filename="d.png"\r\nContent-Type: image/png'
            else:
                head, value = f'name="{name}"', str(value).encode()
            disposition = f"--{BOUNDARY}\r\nContent-Disposition: form-data; {head}\r\n\r\n"
            parts += [disposition.encode(), value, b"\r\n"]
        body = b"".join([*parts, f"--{BOUNDARY}--\r\n".encode()])
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def start(tmp_path: Path, *options: str) -> tuple[subprocess.Popen, int]:
    """``mnist-flow serve --workers 2 OPTIONS`` in a session of its own, once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "flows.cli", "serve", "--workers", "2", "--port", str(port)]
    env = {**os.environ, "PREFECT_API_URL": ""}  # a submitted batch emits no event
    process = subprocess.Popen(
        [*command, "--data-store", str(tmp_path / "store"), *options],
        env=env,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}: {process.stderr.read()!r}")
        try:
            request(port, "GET", "/healthz")
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    pytest.fail("serve --workers 2 never answered")


def workers_of(process: subprocess.Popen) -> list[psutil.Process]:
    """The processes under the server's (its workers), once both have started."""
    deadline = time.monotonic() + 60
    while True:
        children = psutil.Process(process.pid).children(recursive=True)
        if len(children) >= 2 or time.monotonic() > deadline:
            return children
        time.sleep(0.2)


def assert_stopped(process: subprocess.Popen, children: list[psutil.Process]) -> None:
    """The server exits and leaves no process behind (none to kill, so no orphan either)."""
    try:
        assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            child.kill()
    assert alive == []
    assert not psutil.pid_exists(process.pid) or psutil.Process(process.pid).status() == "zombie"


def until(check, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.slow
def test_two_workers_answer_swap_count_corrections_and_stop_on_sigterm(trained, tmp_path):
    registry = Registry(tmp_path / "registry")
    register(registry, trained.first, 0.95)
    champion = registry.champion("mnist")
    champion.path.write_bytes(champion.path.read_bytes()[:100])  # a broken champion
    process, port = start(tmp_path, "--registry", str(registry.root))
    children = workers_of(process)
    try:
        assert len(children) >= 2
        digit = png(dark_on_white(trained.X_test[0]))
        for _ in range(4):
            status, answer = request(port, "POST", "/api/predict", {"image": digit})
            assert status == 503 and "cannot be loaded" in answer["error"]

        register(registry, trained.second, 0.97)  # v0002, promoted: every worker follows

        def all_serve_v0002() -> bool:
            answers = [request(port, "POST", "/api/predict", {"image": digit}) for _ in range(8)]
            return all(s == 200 and a["model"]["version"] == "v0002" for s, a in answers)

        until(all_serve_v0002, "a worker never served the new champion")
        status, answer = request(port, "GET", "/healthz")
        assert status == 200 and answer["model"]["version"] == "v0002"

        waiting = []
        for k in range(6):
            image = png(dark_on_white(trained.X_test[k]))
            status, answer = request(port, "POST", "/api/corrections", {"image": image, "label": 3})
            assert status == 201
            waiting.append(answer["waiting"])
        assert waiting == [1, 2, 3, 4, 5, 6]  # whichever worker recorded each one
        for _ in range(4):
            assert request(port, "GET", "/api/corrections")[1]["waiting"] == 6
            assert request(port, "GET", "/api/model")[1]["corrections_waiting"] == 6
        status, answer = request(port, "POST", "/api/corrections/submit")
        assert status == 201 and answer["count"] + len(answer["skipped"]) == 6
        for _ in range(4):
            assert request(port, "GET", "/api/corrections")[1]["waiting"] == 0
    finally:
        process.send_signal(signal.SIGTERM)  # to the supervisor only: it stops its workers
    assert_stopped(process, children)


@pytest.mark.slow
def test_ctrl_c_stops_every_worker(trained, tmp_path):
    process, port = start(tmp_path, "--model", str(trained.first))
    children = workers_of(process)
    try:
        assert len(children) >= 2
        status, answer = request(port, "GET", "/healthz")
        assert status == 200 and answer["model"]["version"] == "first.npz"
    finally:
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    assert_stopped(process, children)


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_below_one_is_refused_naming_the_option(workers, capsys):
    assert main(["serve", "--workers", workers]) == 2
    assert f"--workers {workers}: must be 1 or more" in capsys.readouterr().err


def _accept_one(sock: socket.socket, answer) -> None:
    """In a worker process: serve ``sock`` as uvicorn does (asyncio ``create_server``) and
    report whether the connection accepted has ``TCP_NODELAY``."""

    async def serve() -> None:
        accepted = asyncio.get_running_loop().create_future()

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                conn = transport.get_extra_info("socket")
                accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Protocol, sock=sock)
        answer.send("listening")
        answer.send(await accepted)
        server.close()

    asyncio.run(serve())


def _nodelay_in_a_spawned_worker(sock: socket.socket) -> int:
    context = multiprocessing.get_context("spawn")  # as uvicorn starts its workers
    ours, theirs = context.Pipe()
    worker = context.Process(target=_accept_one, args=(sock, theirs))
    worker.start()
    try:
        assert ours.poll(60) and ours.recv() == "listening"
        with socket.create_connection(sock.getsockname(), timeout=10):
            assert ours.poll(30)
            return ours.recv()
    finally:
        worker.join(timeout=30)
        sock.close()


@pytest.mark.slow
def test_connections_accepted_by_a_worker_send_without_delay():
    """Without ``TCP_NODELAY`` an answer's body waits for the client's delayed ACK."""
    assert _nodelay_in_a_spawned_worker(listening_socket("127.0.0.1", 0)) != 0
    plain = socket.socket()  # as uvicorn binds for several workers: the check can fail
    plain.bind(("127.0.0.1", 0))
    assert _nodelay_in_a_spawned_worker(plain) == 0
