"""Read a batch of labelled images a user adds: a folder of class subfolders, or two IDX files.

A class folder is named by the class index or name (compared without case and punctuation:
``ankle-boot``); each visible file in it is an image, prepared as ``mnist-flow predict``
prepares one. An IDX pair is taken as it is. :func:`read_batch` returns the usable images
and every problem, each naming its file; duplicates are found by the SHA-256 of the
prepared image, so the same digit scanned at two sizes counts once. Pure: no Prefect.
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
    """The usable images of a batch (uint8 ``(n, 28, 28)``, ink bright on black), their
    int64 ``(n,)`` labels and ``files`` (a path, or ``path[index]``), and the ``problems``
    (everything refused, in the order found)."""

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
    """Read ``[FOLDER]`` or ``[IMAGES, LABELS]`` (IDX, any order) for the dataset ``spec``
    and list every problem; ``known`` holds the :func:`image_hashes` already added.

    Raises DataError (the whole batch refused, whatever ``--skip-bad`` says) when not one
    folder or two files, a file is not IDX, or images and labels disagree.
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
