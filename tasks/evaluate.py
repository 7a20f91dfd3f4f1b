"""Prefect task: score a saved model on the test split (metrics and the mistakes to show).

The work (:func:`tasks.scoring.testset.score_model`) is cheap, one batched forward
pass over the test set, so nothing is cached: a model file rewritten at the same
path is always evaluated afresh.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.datasets import DatasetFiles
from tasks.data.versions import Added
from tasks.logs import run_logger
from tasks.registry.promotion import SameSetScores
from tasks.registry.store import Registry
from tasks.scoring.testset import Evaluation, eval_set_scores, score_model

__all__ = ["Evaluation", "evaluate_model", "score_same_set"]


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_model(model_path: str, data: DatasetFiles, max_errors: int = 36) -> Evaluation:
    """Evaluate the model at ``model_path`` on the test split; keep ``max_errors`` mistakes."""
    return score_model(model_path, data, max_errors, logger=run_logger(__name__))


@task(name="score-same-set", cache_policy=NO_CACHE)
def score_same_set(
    model_path: str, data: DatasetFiles, added: Added, registry_dir: str | None
) -> tuple[dict, SameSetScores]:
    """Score the model and the dataset's champion on the test set plus the held-out added data.

    Returns the model's scores (:func:`tasks.scoring.testset.eval_set_scores`) and both
    accuracies for the promotion.
    """
    logger = run_logger(__name__)
    mine = eval_set_scores(model_path, data, added)
    champion = Registry(registry_dir).sound_champion(data.name)  # a broken one counts as none
    theirs = eval_set_scores(champion.path, data, added) if champion is not None else None
    logger.info(
        "evaluation set (%d test + %d held-out added images): challenger %.4f, champion %s",
        mine["n_test"],
        mine["n_heldout"],
        mine["accuracy"],
        f"{champion.version} {theirs['accuracy']:.4f}" if theirs else "none",
    )
    scores = SameSetScores(
        challenger=mine["accuracy"],
        champion_version=champion.version if champion else None,
        champion=theirs["accuracy"] if theirs else None,
        n_images=mine["n"],
    )
    return mine, scores
