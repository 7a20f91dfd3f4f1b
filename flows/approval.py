"""A person approves or rejects a promotion (``approve=True``) before anything is recorded.

The model is registered held; when the promotion rule would make it the champion, the
run waits for an :class:`Approval`. A deployment's run is suspended (its process exits;
on resume the flow runs again, cached steps reused, and reads the answer under the same
key); Prefect suspends only deployment runs, so a local run pauses instead. A run not
answered within :data:`APPROVAL_TIMEOUT` seconds fails.
"""

from __future__ import annotations

from typing import Any

from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput

from tasks.register import register_model, settle_approval
from tasks.registry.promotion import PromotionDecision, SameSetScores

APPROVAL_TIMEOUT = 7 * 24 * 3600
POLL_SECONDS = 5
KEY = "approval"  # the same key when a suspended run runs again: the answer is read, not asked


class Approval(RunInput):
    """The answer of the person who reviews a promotion."""

    approve: bool = False
    reviewer: str = ""
    reason: str = ""


def ask(proposal: PromotionDecision) -> dict[str, Any]:
    """Wait until a person answers; return the review (``approved``, ``by``, ``reason``)."""
    description = (
        "## Approve this promotion?\n\n"
        + proposal.to_markdown(proposal=True)
        + "\nTick **approve** to make the challenger the champion; leave it unticked to "
        "keep the champion. Your name (**reviewer**) and the **reason** are recorded with "
        "the answer in the run's report and the registry's history."
    )
    form = Approval.with_initial_data(description=description, approve=False)
    context = FlowRunContext.get()
    if context is not None and context.flow_run and context.flow_run.deployment_id is not None:
        reply = suspend_flow_run(wait_for_input=form, timeout=APPROVAL_TIMEOUT, key=KEY)
    else:
        reply = pause_flow_run(
            wait_for_input=form, timeout=APPROVAL_TIMEOUT, poll_interval=POLL_SECONDS, key=KEY
        )
    by = " ".join(reply.reviewer.split()) or "an unnamed reviewer"
    return {"approved": bool(reply.approve), "by": by, "reason": " ".join(reply.reason.split())}


def register_with_approval(
    model_path: str,
    metrics: dict,
    *,
    dataset: str,
    registry_dir: str | None,
    margin: float,
    scores: SameSetScores | None,
) -> PromotionDecision:
    """Register the model, ask a person when the rule would promote it, then settle."""
    proposal = register_model(
        model_path, metrics, dataset=dataset, registry_dir=registry_dir, margin=margin,
        scores=scores, hold=True,
    )  # fmt: skip
    review = ask(proposal) if proposal.promoted else None
    return settle_approval(proposal, review, registry_dir=registry_dir, scores=scores)
