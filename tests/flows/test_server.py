"""The command's server found or started early: only when no server is configured."""

from __future__ import annotations

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import server
from nn.errors import ConfigError


@pytest.mark.parametrize("idle", ["0", "900"])  # a temporary server, the shared one
def test_no_server_is_started_when_an_api_url_is_set(idle, monkeypatch):
    monkeypatch.setenv("MNIST_FLOW_SERVER_IDLE", idle)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        early = server.start_early()  # the thread sees the caller's settings
        early.wait()
    assert early.started is False and early.url is None


def test_a_bad_idle_time_is_refused_before_anything_starts(monkeypatch):
    monkeypatch.setenv("MNIST_FLOW_SERVER_IDLE", "soon")
    with pytest.raises(ConfigError, match="MNIST_FLOW_SERVER_IDLE='soon'"):
        server.load_flow("flows.train", "mnist_train")


def test_load_flow_returns_the_flow_after_the_start(monkeypatch):
    calls = []

    class Fake:
        def wait(self):
            calls.append("wait")

    monkeypatch.setattr(server, "start_early", lambda: calls.append("start") or Fake())
    flow, handle = server.load_flow("flows.train", "mnist_train")
    assert flow.name == "mnist-train" and isinstance(handle, Fake)
    assert calls == ["start", "wait"]
