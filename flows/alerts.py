"""The alert of the project: a webhook is called when a retraining run fails or crashes.

:func:`install_alerts` declares it on the Prefect server (``PREFECT_API_URL``): a
``Webhook`` block named :data:`BLOCK_NAME` holding the URL, and the automation
:data:`AUTOMATION_NAME`, which reacts to ``prefect.flow-run.Failed`` and
``prefect.flow-run.Crashed`` events of flow runs tagged ``retrain`` (the runs of the
``mnist-retrain`` deployment, scheduled or triggered by new data) and POSTs a JSON body
``{"text", "event", "flow_run", "flow_run_id", "occurred"}`` to the webhook. Installing
again replaces both, so the URL can change. ``mnist-flow alerts --webhook URL`` (or
``make alerts WEBHOOK=URL``) calls it.
"""

from __future__ import annotations

import json
from uuid import UUID

from prefect.automations import Automation, CallWebhook, EventTrigger, Posture
from prefect.blocks.webhook import Webhook
from prefect.exceptions import ObjectNotFound

from nn.errors import ConfigError

AUTOMATION_NAME = "mnist-retrain-failed"
BLOCK_NAME = "mnist-flow-alerts"
RETRAIN_TAG = "retrain"
FAILURES = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")

PAYLOAD = json.dumps(
    {
        "text": "mnist-flow: retraining run {{ event.resource.name }} {{ event.event }}",
        "event": "{{ event.event }}",
        "flow_run": "{{ event.resource.name }}",
        "flow_run_id": "{{ event.resource.id }}",
        "occurred": "{{ event.occurred }}",
    }
)


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


def install_alerts(webhook_url: str) -> Automation:
    """Create (or replace) the webhook block and the automation; return the automation."""
    if not webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"--webhook {webhook_url}: give an http:// or https:// URL")
    block_id = Webhook(method="POST", url=webhook_url).save(BLOCK_NAME, overwrite=True)
    try:
        Automation.read(name=AUTOMATION_NAME).delete()
    except (ObjectNotFound, ValueError):
        pass  # first installation
    return alert_automation(block_id).create()
