"""Register a run's model and promote it if it beats the champion (task); the decision is
published as the markdown artifact ``mnist-promotion`` (a new version per run)."""

from __future__ import annotations

from dataclasses import replace

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.registry.history import promote_approved
from tasks.registry.promotion import PromotionDecision, SameSetScores
from tasks.registry.store import Registry

PROMOTION_ARTIFACT_KEY = "mnist-promotion"


def decision_summary(decision: PromotionDecision) -> str:
    """One line: the verdict and both accuracies (the artifact's description)."""
    champion = (
        f"champion {decision.champion_version} {decision.champion_accuracy:.4f}"
        if decision.champion_version is not None
        else "no champion before"
    )
    return (
        f"{decision.dataset}: {decision.challenger_version} {decision.verdict}; accuracy "
        f"{decision.challenger_accuracy:.4f}, {champion} on {decision.evaluated_on}, "
        f"margin {decision.margin:.4f}"
    )


@task(name="register-model", task_run_name="register-{dataset}", cache_policy=NO_CACHE)
def register_model(
    model_path: str,
    metrics: dict,
    *,
    dataset: str,
    registry_dir: str | None = None,
    margin: float = 0.0,
    scores: SameSetScores | None = None,
    hold: bool = False,
) -> PromotionDecision:
    """Register the model (``model.npz``, metadata beside it), promote it when its
    ``metrics["test_accuracy"]`` on ``dataset`` gains ``margin`` over the champion, publish
    the decision. ``registry_dir`` None: the default registry. ``scores``: challenger and
    champion on one evaluation set (with added data), compared instead. ``hold``: register
    only and return what the rule proposes, unpublished, for a person to approve
    (:func:`settle_approval`).
    """
    registry = Registry(registry_dir)
    if hold:
        registered = registry.register(model_path, metrics, dataset=dataset)
        return registry.apply_rule(registered, margin, scores)
    version, decision = registry.register_and_promote(
        model_path, metrics, dataset=dataset, margin=margin, scores=scores
    )
    return _publish(registry, version.version, decision)


def _publish(registry: Registry, version: str, decision: PromotionDecision) -> PromotionDecision:
    """Log the decision and publish it as the ``mnist-promotion`` artifact."""
    get_run_logger().info(
        "registered %s in %s: %s (%s)", version, registry.root, decision.verdict, decision.reason
    )
    create_markdown_artifact(
        markdown=decision.to_markdown(),
        key=PROMOTION_ARTIFACT_KEY,
        description=decision_summary(decision),
    )
    return decision


@task(name="settle-approval", cache_policy=NO_CACHE)
def settle_approval(
    proposal: PromotionDecision,
    review: dict | None,
    *,
    registry_dir: str | None = None,
    scores: SameSetScores | None = None,
) -> PromotionDecision:
    """Promote the proposal's challenger if a person approved it (``review``: ``approved``,
    ``by``, ``reason``), else record the refusal, or the rule's "no" (``review`` None);
    publish the decision."""
    registry = Registry(registry_dir)
    version = proposal.challenger_version
    decision = proposal
    if review is not None:
        answer = "approved" if review["approved"] else "rejected"
        note = f"{answer} by {review['by']}" + (f": {review['reason']}" if review["reason"] else "")
        if review["approved"]:
            decision = promote_approved(registry, version, proposal.margin, scores, note)
        else:
            decision = replace(proposal, promoted=False, reason=f"{proposal.reason}; {note}")
        decision = replace(decision, review=dict(review))
    return _publish(registry, version, decision)
