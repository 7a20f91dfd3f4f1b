"""Classify digit images with a saved model (outputs: :mod:`tasks.images.predictions`).

Each image is made MNIST-style (:func:`tasks.images.prepare.preprocess_file`), scaled with
the model's stored preprocessing, and one ``predict_proba`` call scores the batch. A file
that cannot be read gets a :class:`Prediction` carrying its error: one bad file never
aborts a batch, while a bad model raises :class:`~nn.errors.ModelFileError` before any
image is read. :func:`run_predict` is what ``mnist-flow predict`` calls.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nn.errors import ConfigError, ModelFileError
from nn.io import load_model, metadata_path
from nn.model import MLP
from tasks.data.scaling import check_preprocessing, prepare_images
from tasks.errors import DataError, ImageError
from tasks.images.predictions import (
    CSV_NAME,
    Prediction,
    format_json,
    format_text,
    skipped_note,
    write_csv,
)
from tasks.images.prepare import MnistStyle, image_extensions, preprocess_file

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_SOME_FAILED = 0, 1


@dataclass(frozen=True)
class Predictor:
    """A loaded ``model`` checked to take ``image_size`` x ``image_size`` images, with its
    ``metadata`` (valid ``"preprocessing"``) and ``path`` (for messages)."""

    model: MLP
    metadata: dict[str, Any]
    path: str
    image_size: int = 28

    @property
    def n_classes(self) -> int:
        """Number of classes the model scores."""
        return int(self.model.layer_sizes[-1])


def _declared_image_shape(metadata: dict[str, Any]) -> Any:
    """The image shape recorded in the metadata (top level or under "dataset"), or None."""
    if "image_shape" in metadata:
        return metadata["image_shape"]
    dataset = metadata.get("dataset")
    return dataset.get("image_shape") if isinstance(dataset, dict) else None


def check_predictor(model: MLP, metadata: dict[str, Any], path: str, image_size: int = 28) -> None:
    """Check that a loaded model can score ``image_size`` x ``image_size`` images.

    Raises ModelFileError when the input size is not ``image_size**2``, the metadata
    declares another image shape, or the preprocessing statistics are missing or invalid.
    """
    n_pixels = image_size * image_size
    n_inputs = int(model.layer_sizes[0])
    if n_inputs != n_pixels:
        raise ModelFileError(
            f"{path}: the model takes {n_inputs} inputs, but images are preprocessed to "
            f"{image_size}x{image_size} = {n_pixels} pixels; it does not match MNIST-style digits"
        )
    shape = _declared_image_shape(metadata)
    if shape is not None and list(shape) != [image_size, image_size]:
        raise ModelFileError(
            f"{metadata_path(path)}: image_shape={shape!r} does not match the "
            f"{image_size}x{image_size} MNIST-style images predict produces"
        )
    if "preprocessing" not in metadata:
        raise ModelFileError(
            f"{metadata_path(path)}: no 'preprocessing' statistics "
            "({'standardize', 'mean', 'std'}); cannot prepare images for this model"
        )
    try:
        check_preprocessing(metadata["preprocessing"])
    except DataError as exc:
        raise ModelFileError(f"{metadata_path(path)}: invalid preprocessing: {exc}") from exc


def load_predictor(model_path: str | os.PathLike[str]) -> Predictor:
    """Load a model file (``.npz`` + ``.json``) and check it takes 28x28 images.

    Raises ModelFileError: missing, corrupt or mismatched model (:func:`check_predictor`).
    """
    if not Path(model_path).is_file():
        raise ModelFileError(f"{model_path}: model file not found")
    model, metadata = load_model(model_path)
    check_predictor(model, metadata, str(model_path))
    return Predictor(model=model, metadata=metadata, path=str(model_path))


def check_top(top: int, n_classes: int) -> int:
    """Return ``top`` if it lies in [1, n_classes], else raise ConfigError naming it."""
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= n_classes:
        raise ConfigError(f"top={top!r} must be an integer in [1, {n_classes}] (number of classes)")
    return top


def subfolders(folder: str | os.PathLike[str]) -> list[Path]:
    """The visible folders directly inside ``folder``, sorted: predict does not search them."""
    return sorted(p for p in Path(folder).iterdir() if p.is_dir() and not p.name.startswith("."))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The visible files directly inside ``folder`` whose extension Pillow reads, sorted
    (a corrupt ``.png`` is listed and reported later; ``predictions.csv`` is not).

    Raises DataError when ``folder`` is not a directory, or holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory of images")
    extensions = image_extensions()
    files = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
    )
    if not files:
        subs = ", ".join(p.name for p in subfolders(root)[:5])
        hint = f"; its subfolders ({subs}) are not searched: give them as inputs" if subs else ""
        raise DataError(
            f"{root}: holds no image files (.png, .jpg, .gif, .bmp, .tif, .webp, ...){hint}"
        )
    return files


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Path]]:
    """Files as given, folders replaced by their image files (see :func:`list_images`);
    and the subfolders of those folders, which are skipped."""
    if not inputs:
        raise ConfigError("inputs: give at least one image file or folder")
    paths: list[Path] = []
    skipped: list[Path] = []
    for item in inputs:
        path = Path(item)
        paths.extend(list_images(path) if path.is_dir() else [path])
        skipped.extend(subfolders(path) if path.is_dir() else [])
    return paths, skipped


def score_images(predictor: Predictor, images: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 ``(n, k)``, of uint8 ``(n, 28, 28)`` MNIST-style images."""
    X = prepare_images(images, predictor.metadata["preprocessing"])
    return predictor.model.predict_proba(X)


def predict_files(
    predictor: Predictor, paths: Sequence[str | os.PathLike[str]], top: int = 1
) -> list[Prediction]:
    """Preprocess and score image files: one :class:`Prediction` per path, in order;
    unreadable or blank files get an error instead (without the leading file name)."""
    check_top(top, predictor.n_classes)
    style = MnistStyle(canvas_size=predictor.image_size)
    images: list[np.ndarray] = []
    scored: list[int] = []
    results: list[Prediction] = []
    for i, path in enumerate(paths):
        try:
            images.append(preprocess_file(path, style))
            scored.append(i)
            results.append(Prediction(file=str(path)))
        except ImageError as exc:
            results.append(Prediction(file=str(path), error=str(exc).removeprefix(f"{path}: ")))
    if images:
        proba = score_images(predictor, np.stack(images))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :top]
        for row, i in enumerate(scored):
            best = tuple((int(k), float(proba[row, k])) for k in order[row])
            results[i] = Prediction(
                file=results[i].file, label=best[0][0], probability=best[0][1], top=best
            )
    return results


def run_predict(
    model_path: str | os.PathLike[str],
    inputs: list[str],
    top: int = 1,
    as_json: bool = False,
    csv_path: str | None = None,
) -> tuple[str, int]:
    """Classify image files and folders (a folder: its image files, subfolders listed as
    skipped) with the model ``.npz``; return the text ``mnist-flow predict`` prints and the
    exit status, 1 when some image could not be scored.

    ``top`` classes are shown (in [1, n_classes]); ``as_json`` prints a JSON list instead
    of text; ``csv_path`` also writes a CSV, by default ``<folder>/predictions.csv`` when
    ``inputs`` is a single folder.

    Raises ModelFileError (missing, corrupt, not 28x28), ConfigError (``top`` out of range,
    no input), DataError (a folder without images, the CSV's folder missing).
    """
    predictor = load_predictor(model_path)
    check_top(top, predictor.n_classes)
    paths, skipped = expand_inputs(inputs)
    predictions = predict_files(predictor, paths, top)
    if csv_path is None and len(inputs) == 1 and Path(inputs[0]).is_dir():
        csv_path = str(Path(inputs[0]) / CSV_NAME)
    if as_json:
        text = format_json(predictions)
        for folder in skipped:  # the output stays JSON: the note goes to the log (stderr)
            logger.warning("%s", skipped_note(folder))
    else:
        text = "\n".join([format_text(predictions, top), *map(skipped_note, skipped)])
    if csv_path is not None:
        written = write_csv(predictions, csv_path)
        if not as_json:
            text += f"\nwrote {written}"
    failed = any(p.error is not None for p in predictions)
    return text, EXIT_SOME_FAILED if failed else EXIT_OK
