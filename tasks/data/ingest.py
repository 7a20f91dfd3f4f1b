"""Read a batch of labelled images a user adds: a folder of class subfolders, or two IDX files.

A folder holds one subfolder per class, named by the class index (``0`` ... ``9``) or by
the class name of the dataset (Fashion-MNIST's ``Trouser``, ``ankle-boot``, ``T-shirt_top``:
compared without case and punctuation). Every visible file in a class folder is an image,
prepared exactly as ``mnist-flow predict`` prepares one
(:func:`tasks.images.prepare.preprocess_file`, MNIST style 20 in 28). A pair of IDX files
(images and labels, in any order) is taken as it is.

Nothing is written here: :func:`read_batch` returns the usable images and the list of
problems (an unknown class folder, a file outside any class folder, an unreadable or blank
image, an image that repeats another of the batch), each naming its file. Duplicates are
found by the SHA-256 of the prepared 28x28 image (:func:`image_hashes`), so the same digit
saved twice, or scanned at two sizes, counts once. Pure: no Prefect.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.data.datasets import DatasetSpec
from tasks.data.idx import check_pair, load_idx
from tasks.errors import DataError, ImageError
from tasks.images.prepare import MnistStyle, preprocess_file

#: A batch image whose brightest pixel is below this (out of 255) is blank.
BLANK_LEVEL = 26  # the 0.1 contrast below which predict calls a picture blank
EARLIER = "duplicate of an image of an earlier batch"


@dataclass(frozen=True)
class Problem:
    """One file (or one image of an IDX file) that cannot be added, and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass
class Batch:
    """The usable images of a batch and the problems found.

    Attributes
    ----------
    images:
        uint8 ``(n, 28, 28)``, ink bright on black.
    labels:
        int64 ``(n,)`` class indices.
    files:
        ``n`` names of where each image came from (a path, or ``path[index]``).
    problems:
        Everything refused, in the order found.
    """

    images: np.ndarray
    labels: np.ndarray
    files: list[str]
    problems: list[Problem] = field(default_factory=list)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def class_folders(spec: DatasetSpec) -> dict[str, int]:
    """Folder name (as :func:`_slug` writes it) -> class index, for the classes of ``spec``."""
    names = spec.names_of_classes(spec.n_classes or 10)
    folders = {str(i): i for i in range(len(names))}
    folders.update({_slug(name): i for i, name in enumerate(names)})
    return folders


def image_hashes(images: np.ndarray) -> list[str]:
    """SHA-256 (hex) of each uint8 ``(n, rows, cols)`` image's pixels."""
    n = images.shape[0]
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(n, int(np.prod(images.shape[1:])))
    return [hashlib.sha256(row.tobytes()).hexdigest() for row in flat]


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def read_folder(folder: Path, spec: DatasetSpec) -> Batch:
    """Read a folder of class subfolders (see the module docstring)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    classes = class_folders(spec)
    known = ", ".join(spec.names_of_classes(spec.n_classes or 10))
    problems: list[Problem] = []
    images: list[np.ndarray] = []
    labels: list[int] = []
    files: list[str] = []
    style = MnistStyle(canvas_size=spec.image_shape[0])
    for entry in _visible(folder):
        if not entry.is_dir():
            problems.append(Problem(str(entry), "not inside a class folder"))
            continue
        label = classes.get(_slug(entry.name))
        if label is None:
            problems.append(
                Problem(str(entry), f"unknown class folder for {spec.name} (classes: {known})")
            )
            continue
        for path in _visible(entry):
            try:
                images.append(preprocess_file(path, style))
            except ImageError as exc:
                problems.append(Problem(str(path), str(exc).removeprefix(f"{path}: ")))
                continue
            labels.append(label)
            files.append(str(path))
    shape = (0, *spec.image_shape)
    stacked = np.stack(images) if images else np.zeros(shape, dtype=np.uint8)
    return Batch(stacked, np.asarray(labels, dtype=np.int64), files, problems)


def read_idx_pair(paths: Sequence[Path], spec: DatasetSpec) -> Batch:
    """Read an images file and a labels file (in any order); blank images are problems."""
    loaded = {}
    for path in paths:
        info = load_idx(path)
        if info.kind in loaded:
            raise DataError(f"{path}: a second {info.kind} file; give one images and one labels")
        loaded[info.kind] = info
    images, labels = loaded["images"], loaded["labels"]
    n_classes = spec.n_classes or 10
    check_pair(
        images.array,
        labels.array,
        n_classes=n_classes,
        images_name=str(images.path),
        labels_name=str(labels.path),
    )
    if images.array.shape[1:] != spec.image_shape:
        rows, cols = spec.image_shape
        raise DataError(
            f"{images.path}: images are {images.array.shape[1]}x{images.array.shape[2]}, "
            f"{spec.name} needs {rows}x{cols}"
        )
    files = [f"{images.path}[{i}]" for i in range(images.array.shape[0])]
    blank = images.array.reshape(images.array.shape[0], -1).max(axis=1) < BLANK_LEVEL
    problems = [Problem(files[i], "blank image (no ink)") for i in np.flatnonzero(blank)]
    keep = ~blank
    return Batch(
        images.array[keep],
        labels.array[keep].astype(np.int64),
        [f for f, k in zip(files, keep, strict=True) if k],
        problems,
    )


def drop_duplicates(batch: Batch, known: set[str]) -> Batch:
    """``batch`` without the images seen before in it or in ``known`` (hashes of earlier data).

    Each dropped image adds a problem naming the file it repeats (or "an earlier batch").
    """
    seen: dict[str, str] = {}
    keep = np.ones(batch.images.shape[0], dtype=bool)
    problems = list(batch.problems)
    for i, digest in enumerate(image_hashes(batch.images)):
        if digest in known:
            problems.append(Problem(batch.files[i], EARLIER))
            keep[i] = False
        elif digest in seen:
            problems.append(Problem(batch.files[i], f"duplicate of {seen[digest]}"))
            keep[i] = False
        else:
            seen[digest] = batch.files[i]
    files = [f for f, k in zip(batch.files, keep, strict=True) if k]
    return Batch(batch.images[keep], batch.labels[keep], files, problems)


def read_batch(
    sources: Sequence[str | os.PathLike[str]], spec: DatasetSpec, known: set[str]
) -> Batch:
    """Read one folder, or an IDX images file and its labels file, and list every problem.

    Parameters
    ----------
    sources:
        ``[FOLDER]`` or ``[IMAGES, LABELS]`` (IDX, gzip-compressed or not, any order).
    spec:
        The dataset the batch is added to (its classes and image shape).
    known:
        SHA-256 of every image already added to the dataset (:func:`image_hashes`).

    Raises
    ------
    DataError
        Not one folder or two files, a file that is not IDX, images and labels that
        disagree (these refuse the whole batch whatever ``--skip-bad`` says).
    """
    paths = [Path(s) for s in sources]
    if len(paths) == 1:
        batch = read_folder(paths[0], spec)
    elif len(paths) == 2 and all(p.is_file() for p in paths):
        batch = read_idx_pair(paths, spec)
    else:
        given = " ".join(str(p) for p in paths)
        raise DataError(
            f"{given}: give one folder of class subfolders, or an IDX images file and its "
            "labels file"
        )
    return drop_duplicates(batch, known)
