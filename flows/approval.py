"""A person approves or rejects a promotion in the Prefect UI (``approve=True``).

The model is registered without promotion; when the promotion rule would make it the
champion, the flow run pauses (``pause_flow_run`` waiting for an :class:`Approval`) with
both scores in the form's description. Resuming it with ``approve`` ticked promotes the
model (recorded in the registry's history as ``approved``); unticked, it stays registered
and the champion stays. The API does the same: ``resume_flow_run(id, run_input={"approve":
true, "reason": "..."})``. A run not answered within :data:`APPROVAL_TIMEOUT` seconds fails.
"""

from __future__ import annotations

from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from tasks.register import register_model, settle_approval
from tasks.registry.promotion import PromotionDecision, SameSetScores

APPROVAL_TIMEOUT = 7 * 24 * 3600
POLL_SECONDS = 5


class Approval(RunInput):
    """The answer of the person who reviews a promotion."""

    approve: bool = False
    reason: str = ""


def ask(proposal: PromotionDecision) -> Approval:
    """Pause the flow run until a person answers; return the answer."""
    description = (
        "## Approve this promotion?\n\n"
        + proposal.to_markdown()
        + "\nTick **approve** to make the challenger the champion; leave it unticked to "
        "keep the champion. The reason goes to the registry's history."
    )
    form = Approval.with_initial_data(description=description, approve=False)
    return pause_flow_run(wait_for_input=form, timeout=APPROVAL_TIMEOUT, poll_interval=POLL_SECONDS)


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
    answer = None
    if proposal.promoted:
        reply = ask(proposal)
        verdict = "approved" if reply.approve else "rejected"
        answer = f"{verdict}: {reply.reason}" if reply.reason else verdict
    return settle_approval(proposal, answer, registry_dir=registry_dir, scores=scores)
