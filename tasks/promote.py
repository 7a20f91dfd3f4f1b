"""Register a run's model in the registry and promote it if it beats the champion (task)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.promotion import PromotionDecision
from tasks.registry import Registry


@task(name="register-model", task_run_name="register-{dataset}", cache_policy=NO_CACHE)
def register_model(
    model_path: str,
    metrics: dict,
    *,
    dataset: str,
    registry_dir: str | None = None,
    margin: float = 0.0,
) -> PromotionDecision:
    """Copy the model into the registry and promote it when ``test_accuracy`` gains ``margin``.

    Parameters
    ----------
    model_path:
        The run's ``model.npz`` (its ``.json`` metadata beside it).
    metrics:
        Test metrics holding ``test_accuracy`` in [0, 1].
    dataset:
        Dataset whose test set produced the metrics (one champion per dataset).
    registry_dir:
        Registry root; ``None`` means ``$MNIST_FLOW_REGISTRY`` or the user data folder.
    margin:
        Accuracy gain over the champion needed for promotion, in [0, 1).
    """
    registry = Registry(registry_dir)
    version, decision = registry.register_and_promote(
        model_path, metrics, dataset=dataset, margin=margin
    )
    get_run_logger().info(
        "registered %s in %s: %s (%s)",
        version.version,
        registry.root,
        "promoted to champion" if decision.promoted else "not promoted",
        decision.reason,
    )
    return decision
