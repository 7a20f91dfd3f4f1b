"""The ``mnist_predict`` flow: classify every image of a folder with a saved model.

Writes ``file,label,probability,error`` to a CSV (``<folder>/predictions.csv`` by
default) and publishes the table artifact ``mnist-predictions``. Unreadable or blank
files are reported in the CSV and the log and never abort the batch. The command line
(``mnist-flow predict``) calls :func:`run_predict` directly, without a flow run.

Run locally::

    python -m flows.predict MODEL.npz FOLDER [CSV]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from tasks.images.classify import CSV_NAME, run_predict
from tasks.predict import predict_folder

__all__ = ["mnist_predict", "run_predict"]


@flow(name="mnist-predict", log_prints=False)
def mnist_predict(model_path: str, folder: str, csv_path: str | None = None) -> dict[str, Any]:
    """Score the images of ``folder`` with the model at ``model_path``.

    Parameters
    ----------
    model_path:
        The model ``.npz`` (metadata ``.json`` beside it).
    folder:
        Folder of image files (PNG, JPEG, ...), not searched recursively.
    csv_path:
        Where to write the CSV; ``<folder>/predictions.csv`` when None.

    Returns
    -------
    dict
        ``csv_path``, ``n_images``, ``n_failed`` and ``predictions`` (one dict per image).
    """
    csv_file = csv_path or str(Path(folder) / CSV_NAME)
    predictions = predict_folder(model_path, folder, csv_file)
    failed = sum(p["error"] is not None for p in predictions)
    if failed:
        get_run_logger().warning("%d of %d files could not be scored", failed, len(predictions))
    return {
        "csv_path": csv_file,
        "n_images": len(predictions),
        "n_failed": failed,
        "predictions": predictions,
    }


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m flows.predict MODEL.npz FOLDER [CSV]")
    result = mnist_predict(*sys.argv[1:])
    print(f"scored {result['n_images'] - result['n_failed']} of {result['n_images']} images;")
    print(f"wrote {result['csv_path']}")
