"""The temporary server started early: only when no server is configured."""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import server


def test_no_temporary_server_when_an_api_url_is_set():
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        early = server.start_early()  # the thread sees the caller's settings
        early.wait()
    assert early.started is False


def test_load_flow_returns_the_flow_after_the_start(monkeypatch):
    calls = []

    class Fake:
        def wait(self):
            calls.append("wait")

    monkeypatch.setattr(server, "start_early", lambda: calls.append("start") or Fake())
    flow = server.load_flow("flows.train", "mnist_train")
    assert flow.name == "mnist-train" and calls == ["start", "wait"]
