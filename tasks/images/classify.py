"""Classify digit images with a saved model: batch scoring and output formats.

Each image goes through :func:`tasks.images.prepare.preprocess_file` (MNIST-style 28x28),
then :func:`tasks.data.prepare.prepare_images` with the model's stored preprocessing
(scaling to [0, 1] and standardisation), and one ``predict_proba`` call scores the whole
batch. A file that cannot be read or holds no ink gets a :class:`Prediction` carrying its
error instead of a label: one bad file never aborts a batch. Problems with the model
itself (missing, corrupt, or not taking 28x28 images) raise
:class:`~nn.errors.ModelFileError` before any image is read.

:func:`run_predict` is what ``mnist-flow predict`` calls; the Prefect task
:func:`tasks.predict.predict_folder` of the ``mnist_predict`` flow scores a folder.
"""

from __future__ import annotations

import csv
import io
import json
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
from tasks.files import write_text_atomic
from tasks.images.prepare import MnistStyle, image_extensions, preprocess_file

CSV_NAME = "predictions.csv"
"""File name of the CSV written inside a scored folder when no other path is given."""

CSV_COLUMNS = ("file", "label", "probability", "error")

EXIT_OK, EXIT_SOME_FAILED = 0, 1


@dataclass(frozen=True)
class Prediction:
    """The outcome for one image file.

    Attributes
    ----------
    file:
        The path as given (or as listed from a folder).
    label:
        The most likely class, or None when the file could not be scored.
    probability:
        Its probability in [0, 1], or None.
    top:
        ``(label, probability)`` of the most likely classes, most likely first.
    error:
        Why the file could not be scored, or None.
    """

    file: str
    label: int | None = None
    probability: float | None = None
    top: tuple[tuple[int, float], ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: file, label, probability (6 decimals), top, error.

        ``top`` is a list of ``{"label", "probability"}``, most likely first.
        """
        return {
            "file": self.file,
            "label": self.label,
            "probability": None if self.probability is None else round(self.probability, 6),
            "top": [{"label": k, "probability": round(p, 6)} for k, p in self.top],
            "error": self.error,
        }


@dataclass(frozen=True)
class Predictor:
    """A loaded model checked to take MNIST-style images.

    Attributes
    ----------
    model:
        The network (input size ``image_size**2``).
    metadata:
        Its metadata; ``metadata["preprocessing"]`` is valid.
    path:
        The model file, for messages.
    image_size:
        Side in pixels of the square images the model takes (28).
    """

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

    Raises
    ------
    ModelFileError
        The input size is not ``image_size**2``, the metadata declares another image
        shape, or the preprocessing statistics are missing or invalid.
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

    Raises
    ------
    ModelFileError
        Missing, corrupt or mismatched model (see :func:`check_predictor`).
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


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name.

    Image files are the visible regular files whose extension Pillow reads
    (``.png``, ``.jpg``, ...); a corrupt ``.png`` is listed (and reported later), other
    files such as the ``predictions.csv`` written here are not.

    Raises
    ------
    DataError
        ``folder`` is not a directory, or holds no image file.
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
        raise DataError(f"{root}: holds no image files (.png, .jpg, .gif, .bmp, .tif, .webp, ...)")
    return files


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders replaced by their image files (see :func:`list_images`)."""
    if not inputs:
        raise ConfigError("inputs: give at least one image file or folder")
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        paths.extend(list_images(path) if path.is_dir() else [path])
    return paths


def score_images(predictor: Predictor, images: np.ndarray) -> np.ndarray:
    """Class probabilities of MNIST-style images.

    Parameters
    ----------
    predictor:
        The checked model.
    images:
        uint8 (n, 28, 28), ink bright on black.

    Returns
    -------
    numpy.ndarray
        float32 (n, k), rows summing to 1.
    """
    X = prepare_images(images, predictor.metadata["preprocessing"])
    return predictor.model.predict_proba(X)


def _reason(exc: Exception, file: str) -> str:
    """The message of ``exc`` without a leading ``"<file>: "`` (the file has its own column)."""
    message = str(exc)
    return message.removeprefix(f"{file}: ")


def predict_files(
    predictor: Predictor, paths: Sequence[str | os.PathLike[str]], top: int = 1
) -> list[Prediction]:
    """Preprocess and score image files; unreadable or blank files get an error instead.

    Returns
    -------
    list[Prediction]
        One per path, in the same order.
    """
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
            results.append(Prediction(file=str(path), error=_reason(exc, str(path))))
    if images:
        proba = score_images(predictor, np.stack(images))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :top]
        for row, i in enumerate(scored):
            best = tuple((int(k), float(proba[row, k])) for k in order[row])
            results[i] = Prediction(
                file=results[i].file, label=best[0][0], probability=best[0][1], top=best
            )
    return results


def _one_line(text: str) -> str:
    """``text`` with newlines and other control characters escaped (``\\n``), else as is."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def format_text(predictions: Sequence[Prediction], top: int = 1) -> str:
    """One line per image: ``file: label (probability)``, the top K with ``top > 1``.

    A file name holding a newline or another control character is shown escaped, so
    each image stays on one line.
    """
    lines = []
    for p in predictions:
        if p.error is not None:
            lines.append(f"{_one_line(p.file)}: error: {_one_line(p.error)}")
            continue
        line = f"{_one_line(p.file)}: {p.label} ({p.probability:.4f})"
        if top > 1:
            line += f"  top {top}: " + ", ".join(f"{k} ({q:.4f})" for k, q in p.top)
        lines.append(line)
    failed = sum(p.error is not None for p in predictions)
    if len(predictions) > 1 or failed:
        lines.append(f"scored {len(predictions) - failed} of {len(predictions)} images")
    return "\n".join(lines)


def format_json(predictions: Sequence[Prediction]) -> str:
    """A JSON list of :meth:`Prediction.to_dict` objects."""
    return json.dumps([p.to_dict() for p in predictions], indent=2)


def csv_cell(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading ``= + - @`` (or tab, CR) gets a ``'``.

    Spreadsheet programs run a cell that starts with one of those as a formula (CSV
    injection); a file name such as ``=HYPERLINK(...).png`` must stay text.
    """
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def csv_text(predictions: Sequence[Prediction]) -> str:
    """CSV with columns file, label, probability, error (empty cells when absent).

    Text cells go through :func:`csv_cell`; the csv module quotes cells with newlines.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in predictions:
        prob = "" if p.probability is None else f"{p.probability:.6f}"
        label = "" if p.label is None else p.label
        writer.writerow([csv_cell(p.file), label, prob, csv_cell(p.error or "")])
    return buf.getvalue()


def write_csv(predictions: Sequence[Prediction], path: str | os.PathLike[str]) -> Path:
    """Write :func:`csv_text` to ``path`` atomically (temporary file + ``os.replace``)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise DataError(f"{target}: cannot write the CSV, folder {target.parent} does not exist")
    try:
        write_text_atomic(target, csv_text(predictions), fsync=False)
    except OSError as exc:
        raise DataError(f"{target}: cannot write the CSV: {exc.strerror or exc}") from exc
    return target


def run_predict(
    model_path: str | os.PathLike[str],
    inputs: list[str],
    top: int = 1,
    as_json: bool = False,
    csv_path: str | None = None,
) -> tuple[str, int]:
    """Classify image files and folders; what ``mnist-flow predict`` prints.

    Parameters
    ----------
    model_path:
        The model ``.npz`` (its metadata ``.json`` beside it).
    inputs:
        Image files and folders (a folder stands for its image files).
    top:
        How many of the most likely classes to show, in [1, n_classes].
    as_json:
        Print a JSON list of predictions instead of text lines.
    csv_path:
        Also write the predictions to this CSV. When None and ``inputs`` is a single
        folder, the CSV goes to ``<folder>/predictions.csv``.

    Returns
    -------
    tuple[str, int]
        The text to print and the exit status: 0 when every image was scored, 1 when
        some could not be (their errors are in the text and the CSV).

    Raises
    ------
    ModelFileError
        The model is missing, corrupt or does not take 28x28 images.
    ConfigError
        ``top`` is out of range or no input was given.
    DataError
        A folder holds no image, or the CSV's folder does not exist.
    """
    predictor = load_predictor(model_path)
    check_top(top, predictor.n_classes)
    paths = expand_inputs(inputs)
    predictions = predict_files(predictor, paths, top)
    if csv_path is None and len(inputs) == 1 and Path(inputs[0]).is_dir():
        csv_path = str(Path(inputs[0]) / CSV_NAME)
    text = format_json(predictions) if as_json else format_text(predictions, top)
    if csv_path is not None:
        written = write_csv(predictions, csv_path)
        if not as_json:
            text += f"\nwrote {written}"
    failed = any(p.error is not None for p in predictions)
    return text, EXIT_SOME_FAILED if failed else EXIT_OK


def artifact_rows(predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
    """Rows of the table artifact: file (str), label (int | None), probability, error (str)."""
    return [
        {
            "file": p.file,
            "label": p.label,
            "probability": None if p.probability is None else round(p.probability, 4),
            "error": p.error or "",
        }
        for p in predictions
    ]
