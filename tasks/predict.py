"""The predict step: score a folder of images, write a CSV, publish ``mnist-predictions``.

The scoring is plain code (:mod:`tasks.images.classify`); ``mnist-flow predict``
calls it directly, the ``mnist_predict`` flow through this task.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from tasks.images.classify import list_images, load_predictor, predict_files, subfolders
from tasks.images.predictions import artifact_rows, skipped_note, write_csv

ARTIFACT_KEY = "mnist-predictions"
"""Key of the table artifact published by :func:`predict_folder`."""


@task(name="predict-folder")
def predict_folder(model_path: str, folder: str, csv_path: str) -> list[dict[str, Any]]:
    """Score every image of ``folder``, write ``csv_path``, publish the table artifact."""
    logger = get_run_logger()
    predictor = load_predictor(model_path)
    predictions = predict_files(predictor, list_images(folder))
    for sub in subfolders(folder):
        logger.warning("%s", skipped_note(sub))
    for p in predictions:
        if p.error is not None:
            logger.warning("could not score %s: %s", p.file, p.error)
    written = write_csv(predictions, csv_path)
    failed = sum(p.error is not None for p in predictions)
    summary = f"{len(predictions) - failed} of {len(predictions)} images scored in {folder}"
    logger.info("%s with %s; wrote %s", summary, model_path, written)
    create_table_artifact(
        table=artifact_rows(predictions),
        key=ARTIFACT_KEY,
        description=f"Predictions: {summary} ({failed} unreadable); model {model_path}",
    )
    return [p.to_dict() for p in predictions]
