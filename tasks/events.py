"""The Prefect event a new data version emits: ``mnist-flow.data.added``.

Its resource is ``mnist-flow.dataset.<name>``; its payload holds the dataset, the
version's id, its image count and per-class counts, and the data store, so the trigger
of the ``mnist-retrain`` deployment (``prefect.yaml``) retrains that dataset from that
store. The event goes to the server ``PREFECT_API_URL`` names, else to the local
database (the temporary server's).
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event
from prefect.events.worker import EventsWorker

from tasks.data.versions import DataVersion

DATA_ADDED = "mnist-flow.data.added"
RESOURCE_PREFIX = "mnist-flow.dataset."


def data_added_payload(version: DataVersion, store: str) -> dict[str, Any]:
    """What the event carries: the dataset, the version and its counts, the store."""
    return {
        "dataset": version.dataset,
        "version": version.id,
        "n_images": version.n_images,
        "n_heldout": version.n_heldout,
        "counts": version.counts,
        "data_store": store,
    }


def emit_data_added(version: DataVersion, store: str, timeout: float = 30.0) -> str | None:
    """Emit ``mnist-flow.data.added`` for ``version`` and wait until it is sent; its id."""
    event = emit_event(
        event=DATA_ADDED,
        resource={
            "prefect.resource.id": RESOURCE_PREFIX + version.dataset,
            "prefect.resource.name": version.dataset,
        },
        payload=data_added_payload(version, store),
    )
    EventsWorker.drain_all(timeout=timeout)
    return str(event.id) if event is not None else None
