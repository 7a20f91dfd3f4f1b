"""Prefect task: score a saved model on the test split (metrics and the mistakes to show).

The work (:func:`tasks.scoring.testset.score_model`) is cheap, one batched forward
pass over the test set, so nothing is cached: a model file rewritten at the same
path is always evaluated afresh.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data.datasets import DatasetFiles
from tasks.logs import run_logger
from tasks.scoring.testset import Evaluation, score_model

__all__ = ["Evaluation", "evaluate_model"]


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_model(model_path: str, data: DatasetFiles, max_errors: int = 36) -> Evaluation:
    """Evaluate the model at ``model_path`` on the test split; keep ``max_errors`` mistakes."""
    return score_model(model_path, data, max_errors, logger=run_logger(__name__))
