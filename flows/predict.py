"""``mnist_predict``: classify every image of a folder with a saved model.

Writes a CSV (``<folder>/predictions.csv`` by default); unreadable or blank files are
reported there and never abort the batch. ``mnist-flow predict`` needs no flow run
(:func:`tasks.images.classify.run_predict`). Locally: ``python -m flows.predict MODEL.npz
FOLDER [CSV]``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from tasks.images.classify import CSV_NAME
from tasks.predict import predict_folder


@flow(name="mnist-predict", log_prints=False)
def mnist_predict(model_path: str, folder: str, csv_path: str | None = None) -> dict[str, Any]:
    """Score the image files of ``folder`` (not recursive) with the model ``.npz`` at
    ``model_path``, writing ``csv_path`` (default ``<folder>/predictions.csv``); return
    ``csv_path``, ``n_images``, ``n_failed`` and ``predictions`` (one dict per image)."""
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
