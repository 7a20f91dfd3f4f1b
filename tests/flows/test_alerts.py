"""The alert's webhook body, rendered as Prefect's server renders an automation's payload and
POSTed by the project's webhook block to a loopback listener (the server path end to end:
``tests/integration/test_data_trigger.py``)."""

from __future__ import annotations

import asyncio
import datetime
import http.server
import json
import uuid
from collections.abc import Iterator
from typing import ClassVar

import pytest

from flows.alerts import alert_automation, webhook_block
from nn.errors import ConfigError
from tests.loopback import running

UI = "http://127.0.0.1:4377"
MESSAGE = 'Flow run encountered an exception: DataError: data.data_dir=/no "such"\n<folder>'


class Listener(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def listener() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    Listener.received.clear()
    with running(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"


def render(payload: str, state: str, message: str) -> tuple[str, uuid.UUID]:
    """``payload`` rendered for a flow run's state event, with Prefect's server templates."""
    from prefect.server.events.actions import CallWebhook
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.server.schemas.responses import FlowRunResponse
    from prefect.server.utilities.user_templates import render_user_template
    from prefect.settings import PREFECT_UI_URL, temporary_settings

    CallWebhook.validate_template(payload, "payload")  # as the server does (registers filters)
    run_id = uuid.uuid4()
    event = ReceivedEvent(
        id=uuid.uuid4(),
        occurred=datetime.datetime(2026, 12, 6, 3, 0, tzinfo=datetime.UTC),
        event=f"prefect.flow-run.{state}",
        resource={
            "prefect.resource.id": f"prefect.flow-run.{run_id}",
            "prefect.resource.name": "pipeline-mnist-train-all-event-seed0-complex-bullfrog",
            "prefect.state-message": message,
            "prefect.state-name": state,
        },
    )
    flow_run = FlowRunResponse(id=run_id, name=event.resource.name, flow_id=uuid.uuid4())
    with temporary_settings({PREFECT_UI_URL: UI}):
        body = asyncio.run(render_user_template(payload, {"event": event, "flow_run": flow_run}))
    return body, run_id


def test_the_webhook_receives_json_with_the_message_and_the_link(listener: str) -> None:
    (action,) = alert_automation(uuid.uuid4()).actions
    body, run_id = render(action.payload, "Failed", MESSAGE)
    asyncio.run(webhook_block(listener).call(payload=body))
    [(path, headers, raw)] = Listener.received
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    sent = json.loads(raw)
    url = f"{UI}/runs/flow-run/{run_id}"
    assert sent == {
        "text": "mnist-flow: retraining run pipeline-mnist-train-all-event-seed0-complex-bullfrog"
        f" failed: {MESSAGE} {url}",
        "flow_run": "pipeline-mnist-train-all-event-seed0-complex-bullfrog",
        "flow_run_id": str(run_id),
        "state": "Failed",
        "message": MESSAGE,
        "url": url,
        "event": "prefect.flow-run.Failed",
        "occurred": "2026-12-06T03:00:00+00:00",
    }


def test_a_crash_without_message_still_says_what_happened() -> None:
    (action,) = alert_automation(uuid.uuid4()).actions
    body, run_id = render(action.payload, "Crashed", "")
    sent = json.loads(body)
    assert sent["text"] == (
        "mnist-flow: retraining run pipeline-mnist-train-all-event-seed0-complex-bullfrog "
        f"crashed {UI}/runs/flow-run/{run_id}"
    )
    assert (sent["state"], sent["message"]) == ("Crashed", "")


def test_the_webhook_must_be_a_web_address() -> None:
    with pytest.raises(ConfigError, match=r"--webhook hooks\.example\.com: give an http"):
        webhook_block("hooks.example.com")
