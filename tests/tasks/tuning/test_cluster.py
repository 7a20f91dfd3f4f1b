"""Checks of a Dask search before any work: address, package, a scheduler that answers."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from nn.errors import ConfigError
from tasks.errors import SearchError
from tasks.tuning.cluster import Placement, check_backend, probe_scheduler, split_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("tcp://10.0.0.5:8786", ("tcp", "10.0.0.5", 8786)),
        ("10.0.0.5:9000", ("tcp", "10.0.0.5", 9000)),
        ("tls://sched.example:8786", ("tls", "sched.example", 8786)),
        ("tcp://127.0.0.1", ("tcp", "127.0.0.1", 8786)),
    ],
)
def test_scheduler_addresses(address, expected):
    assert split_address(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://127.0.0.1:8786", "web address"),
        ("https://h:8787/status", "web address"),
        ("udp://h:8786", "unknown scheme 'udp'"),
        ("tcp://h:99999", "bad port"),
        ("tcp://:8786", "not of the form"),
        ("tcp://h:8786/status", "not of the form"),
    ],
)
def test_bad_addresses_are_refused_naming_the_parameter(address, message):
    with pytest.raises(ConfigError, match=message) as info:
        split_address(address)
    assert str(info.value).startswith(f"dask_address={address!r}")
    assert "\n" not in str(info.value)


def test_missing_distributed_is_refused_only_for_dask(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    check_backend("loky", None)
    needs = r"backend='dask' needs the 'distributed' package.*\[dask\]"
    with pytest.raises(ConfigError, match=needs):
        check_backend("dask", "tcp://127.0.0.1:8786")


@contextmanager
def listener(greeting: bytes | None) -> Iterator[int]:
    """A loopback TCP server that sends ``greeting`` on connect (None: waits silently)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                if greeting is not None:
                    conn.sendall(greeting)
                stop.wait(3)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def test_probe_accepts_a_server_that_speaks_first():
    with listener(b"\x01handshake") as port:
        probe_scheduler(f"tcp://127.0.0.1:{port}", timeout=2)


def test_probe_gives_up_on_a_silent_port_in_one_line():
    """A web server (the dashboard's port) waits for a request: no hang, one clear line."""
    with listener(None) as port:
        with pytest.raises(SearchError, match=r"no Dask handshake within 0\.2 s") as info:
            probe_scheduler(f"tcp://127.0.0.1:{port}", timeout=0.2)
    assert f"tcp://127.0.0.1:{port}" in str(info.value) and "dashboard" in str(info.value)


def test_probe_names_a_closed_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with pytest.raises(
        SearchError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    ):
        probe_scheduler(f"tcp://127.0.0.1:{port}", timeout=2)


def test_placement_says_where_trials_ran():
    assert Placement("loky", None, 2, 2).describe() == "loky on this machine: 2 worker processes"
    dask = Placement("dask", "tcp://10.0.0.5:8786", 4, 8)
    assert dask.to_dict()["where"] == "dask at tcp://10.0.0.5:8786: 4 workers, 8 threads"
