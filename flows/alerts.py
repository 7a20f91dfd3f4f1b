"""The alert of the project: a webhook is called when a retraining run fails or crashes.

:func:`install_alerts` declares, on the Prefect server of ``PREFECT_API_URL``, a
``Webhook`` block holding the URL and an automation reacting to failed or crashed flow
runs tagged ``retrain``; installing again replaces both. The body (:data:`PAYLOAD`,
documented in the README) is JSON a Slack-style webhook shows as is (``text``) and a
generic receiver reads field by field; ``tojson`` keeps a message valid JSON.
"""

from __future__ import annotations

from uuid import UUID

from prefect.automations import Automation, CallWebhook, EventTrigger, Posture
from prefect.blocks.webhook import Webhook
from prefect.exceptions import ObjectNotFound

from nn.errors import ConfigError

AUTOMATION_NAME = "mnist-retrain-failed"
BLOCK_NAME = "mnist-flow-alerts"
RETRAIN_TAG = "retrain"
FAILURES = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")

PAYLOAD = """\
{%- set run = event.resource -%}
{%- set state = event.event | replace("prefect.flow-run.", "") -%}
{%- set message = run.get("prefect.state-message") or "" -%}
{%- set url = flow_run | ui_url -%}
{
  "text": {{ ("mnist-flow: retraining run " ~ run.name ~ " " ~ state | lower
              ~ (": " ~ message if message else "") ~ (" " ~ url if url else "")) | tojson }},
  "flow_run": {{ run.name | tojson }},
  "flow_run_id": {{ run.id | replace("prefect.flow-run.", "") | tojson }},
  "state": {{ state | tojson }},
  "message": {{ message | tojson }},
  "url": {{ (url or none) | tojson }},
  "event": {{ event.event | tojson }},
  "occurred": {{ event.occurred.isoformat() | tojson }}
}"""
"""The webhook's body: a Prefect template rendered by the server for the failing event."""


def alert_automation(block_id: UUID) -> Automation:
    """The automation: failed or crashed ``retrain`` runs call the webhook block ``block_id``."""
    return Automation(
        name=AUTOMATION_NAME,
        description="Calls the mnist-flow-alerts webhook when a retraining run fails or crashes.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.tag.{RETRAIN_TAG}"},
            expect=set(FAILURES),
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_id, payload=PAYLOAD)],
    )


def webhook_block(webhook_url: str) -> Webhook:
    """The block that POSTs JSON to ``webhook_url`` (an ``http(s)://`` URL)."""
    if not webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"--webhook {webhook_url}: give an http:// or https:// URL")
    return Webhook(method="POST", url=webhook_url, headers={"Content-Type": "application/json"})


def install_alerts(webhook_url: str) -> Automation:
    """Create (or replace) the webhook block and the automation; return the automation."""
    block_id = webhook_block(webhook_url).save(BLOCK_NAME, overwrite=True)
    try:
        Automation.read(name=AUTOMATION_NAME).delete()
    except (ObjectNotFound, ValueError):
        pass  # first installation
    return alert_automation(block_id).create()
