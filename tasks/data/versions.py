"""The data store: labelled batches added to a dataset, each an immutable data version.

Layout of a store ``root`` (``--data-store``, else ``$MNIST_FLOW_DATA``, else ``data`` in
the user data folder: not the cache, so clearing the cache never loses added data)::

    root/<dataset>/.lock            filelock held while a batch is checked and written
    root/<dataset>/<id>/images.npy  uint8 (n, 28, 28), prepared like predict's images
    root/<dataset>/<id>/labels.npy  int64 (n,)
    root/<dataset>/<id>/version.json
        {"id", "dataset", "seq", "created_at", "n_images", "counts", "n_heldout", "source"}

``id`` is the first 12 hex digits of the SHA-256 of the batch's content (same content, same
id); ``seq`` orders the versions; a version folder appears atomically and is never rewritten.
A data version names the base dataset plus every batch up to it (``"base"``: none,
``"latest"``: all). :data:`HELDOUT_SHARE` of each batch, drawn from its id (always the same
images), is held out for evaluation. Pure: no Prefect.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from platformdirs import user_data_path

from nn.config import SettingError
from tasks.data.datasets import DatasetSpec
from tasks.data.ingest import EARLIER, Problem, image_hashes, read_batch
from tasks.errors import DataError
from tasks.files import write_directory_atomic, write_json_atomic

ENV_VAR = "MNIST_FLOW_DATA"
HELDOUT_SHARE = 0.2
BASE = "base"
LATEST = "latest"
_ID_LENGTH = 12


def default_store_root() -> Path:
    """``$MNIST_FLOW_DATA`` if set and non-empty, else ``data`` in the user data folder."""
    if env := os.environ.get(ENV_VAR):
        return Path(env).expanduser()
    return user_data_path("mnist-flow", appauthor=False) / "data"


def resolve_store(root: str | os.PathLike[str] | None) -> Path:
    """``root`` as an absolute path, or :func:`default_store_root`."""
    return (Path(root).expanduser() if root else default_store_root()).absolute()


@dataclass(frozen=True)
class DataVersion:
    """One added batch (the fields of its ``version.json``) and its folder."""

    id: str
    dataset: str
    seq: int
    created_at: str
    n_images: int
    counts: dict[str, int]
    n_heldout: int
    source: str
    directory: Path

    def to_json(self) -> dict[str, Any]:
        """The record written to ``version.json``."""
        fields = dict(self.__dict__)
        fields.pop("directory")
        return fields

    def heldout_mask(self) -> np.ndarray:
        """bool ``(n_images,)``: True for the images held out for evaluation."""
        return heldout_mask(self.id, self.n_images)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch's uint8 ``(n, 28, 28)`` images and int64 ``(n,)`` labels."""
        try:
            images = np.load(self.directory / "images.npy", allow_pickle=False)
            labels = np.load(self.directory / "labels.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{self.directory}: cannot read data version {self.id}: {exc}"
            ) from None
        if images.shape[0] != self.n_images or labels.shape != (self.n_images,):
            raise DataError(f"{self.directory}: arrays do not match version.json")
        return images, labels.astype(np.int64)


@dataclass(frozen=True)
class Added:
    """The added batches a run trains and evaluates on (small and picklable: a task input).

    ``version`` is ``"base"`` (nothing added) or the id of the newest batch included.
    """

    dataset: str
    version: str = BASE
    ids: tuple[str, ...] = ()
    directories: tuple[str, ...] = ()

    @classmethod
    def of(cls, dataset: str, versions: list[DataVersion]) -> Added:
        """The selection of ``versions`` (oldest first) of ``dataset``."""
        if not versions:
            return cls(dataset)
        return cls(
            dataset,
            versions[-1].id,
            tuple(v.id for v in versions),
            tuple(str(v.directory) for v in versions),
        )

    def batches(self) -> list[DataVersion]:
        """The batches, read again from their folders."""
        found = []
        for directory in self.directories:
            data = json.loads((Path(directory) / "version.json").read_text(encoding="utf-8"))
            found.append(DataVersion(**data, directory=Path(directory)))
        return found

    def load(self, heldout: bool) -> tuple[np.ndarray, np.ndarray]:
        """uint8 ``(n, 28, 28)`` images and int64 ``(n,)`` labels of every batch's held-out
        part (``heldout``) or training part, batches in order."""
        images, labels = [np.zeros((0, 28, 28), np.uint8)], [np.zeros(0, np.int64)]
        for batch in self.batches():
            batch_images, batch_labels = batch.load()
            keep = batch.heldout_mask() == heldout
            images.append(batch_images[keep])
            labels.append(batch_labels[keep])
        return np.concatenate(images), np.concatenate(labels)

    def lineage(self) -> dict[str, Any]:
        """What ``metrics.json`` records: the version, the batches and their image counts."""
        batches = self.batches()
        return {
            "version": self.version,
            "batches": list(self.ids),
            "n_added": sum(b.n_images for b in batches),
            "n_added_heldout": sum(b.n_heldout for b in batches),
        }


def heldout_mask(version_id: str, n: int) -> np.ndarray:
    """bool ``(n,)`` marking :data:`HELDOUT_SHARE` of ``n`` images, chosen from ``version_id``."""
    rng = np.random.default_rng(int(version_id, 16))
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[: int(n * HELDOUT_SHARE)]] = True
    return mask


def content_id(images: np.ndarray, labels: np.ndarray) -> str:
    """The id of a batch: SHA-256 of its images and labels, first 12 hex digits."""
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()[:_ID_LENGTH]


class DataStore:
    """The added batches of every dataset under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, lock_timeout: float = 60.0):
        self.root = resolve_store(root)
        self.lock_timeout = lock_timeout

    def folder(self, dataset: str) -> Path:
        """The folder of ``dataset``'s versions."""
        return self.root / dataset

    def versions(self, dataset: str) -> list[DataVersion]:
        """Every version of ``dataset``, oldest first."""
        folder = self.folder(dataset)
        if not folder.is_dir():
            return []
        found = []
        for directory in folder.iterdir():
            record = directory / "version.json"
            if directory.name.startswith(".") or not record.is_file():
                continue
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
                found.append(DataVersion(**data, directory=directory))
            except (OSError, ValueError, TypeError) as exc:
                raise DataError(f"{record}: corrupted data version record ({exc})") from None
        return sorted(found, key=lambda v: v.seq)

    def select(self, dataset: str, version: str | None = LATEST) -> list[DataVersion]:
        """The batches of data version ``version``: ``"base"`` none, ``"latest"`` all, an id
        (or a unique prefix of one) those up to and including it.

        Raises
        ------
        ConfigError
            An id that names no version of ``dataset`` (the message lists them).
        """
        versions = self.versions(dataset)
        if version in (None, "", LATEST):
            return versions
        if version == BASE:
            return []
        matches = [i for i, v in enumerate(versions) if v.id.startswith(version)]
        if len(matches) != 1:
            known = ", ".join(v.id for v in versions) or "none added yet"
            what = "matches several" if matches else "is not"
            raise SettingError(
                "data_version",
                version,
                f"{what} a data version of {dataset} in {self.root} (base, latest or one of: "
                f"{known})",
            )
        return versions[: matches[0] + 1]

    def added(self, dataset: str, version: str | None = LATEST) -> Added:
        """The :class:`Added` batches of data version ``version`` (see :meth:`select`)."""
        return Added.of(dataset, self.select(dataset, version))

    def known_hashes(self, dataset: str) -> set[str]:
        """SHA-256 of every image added to ``dataset`` so far."""
        hashes: set[str] = set()
        for version in self.versions(dataset):
            hashes.update(image_hashes(version.load()[0]))
        return hashes

    @contextlib.contextmanager
    def locked(self, dataset: str) -> Iterator[None]:
        """Hold the lock of ``dataset`` while a batch is checked against the others and written."""
        self.folder(dataset).mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.folder(dataset) / ".lock", timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:
            raise DataError(
                f"data store {self.root}: another process holds {lock.lock_file}"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def add(
        self, dataset: str, images: np.ndarray, labels: np.ndarray, *, source: str, n_classes: int
    ) -> DataVersion:
        """Store a checked batch as a new version (call with :meth:`locked` held).

        Raises DataError when the same content is already a version or cannot be written.
        """
        version_id = content_id(images, labels)
        existing = self.versions(dataset)
        if any(v.id == version_id for v in existing):
            raise DataError(f"{source}: this batch is already data version {version_id}")
        counts = np.bincount(labels, minlength=n_classes)
        version = DataVersion(
            id=version_id,
            dataset=dataset,
            seq=max((v.seq for v in existing), default=0) + 1,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            n_images=int(labels.shape[0]),
            counts={str(k): int(c) for k, c in enumerate(counts)},
            n_heldout=int(heldout_mask(version_id, labels.shape[0]).sum()),
            source=source,
            directory=self.folder(dataset) / version_id,
        )
        try:
            with write_directory_atomic(version.directory) as tmp:
                np.save(tmp / "images.npy", np.ascontiguousarray(images, np.uint8))
                np.save(tmp / "labels.npy", np.ascontiguousarray(labels, np.int64))
                write_json_atomic(tmp / "version.json", version.to_json())
        except OSError as exc:
            raise DataError(f"cannot write data version {version.directory}: {exc}") from exc
        return version


class BatchRefused(DataError):
    """A batch with problems, refused whole (nothing was added); ``problems`` lists them all."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


def add_batch(
    store: DataStore, spec: DatasetSpec, sources: list[str], *, skip_bad: bool = False
) -> tuple[DataVersion, list[Problem]]:
    """Check a batch (:func:`tasks.data.ingest.read_batch`) and store it as a new version;
    return it and the problems skipped (only with ``skip_bad``).

    Raises BatchRefused (nothing added) on a problem without ``skip_bad``, or no usable image.
    """
    given = " ".join(sources)
    with store.locked(spec.name):
        batch = read_batch(sources, spec, store.known_hashes(spec.name))
        n = len(batch.problems)
        if batch.labels.size == 0:
            raise BatchRefused(_nothing_usable(given, spec.name, batch.problems), batch.problems)
        if batch.problems and not skip_bad:
            raise BatchRefused(
                f"{batch.problems[0]} ({n} problem{'s' if n > 1 else ''} in {given}; nothing "
                "added; --skip-bad adds the other images)",
                batch.problems,
            )
        version = store.add(
            spec.name, batch.images, batch.labels, source=given, n_classes=spec.n_classes or 10
        )
    return version, batch.problems


def _nothing_usable(given: str, dataset: str, problems: list[Problem]) -> str:
    """Why a batch without a single usable image adds nothing."""
    if not problems:
        return (
            f"{given}: no image to add (an empty folder, or class folders without image "
            "files); nothing added"
        )
    if all(p.reason == EARLIER for p in problems):
        return f"{given}: every image ({len(problems)}) is already in {dataset}; nothing added"
    return (
        f"{given}: no usable image, all {len(problems)} refused (the first: {problems[0]}); "
        "nothing added"
    )


def format_versions(versions: list[DataVersion], class_names: list[str]) -> str:
    """The versions as a plain-text table for ``mnist-flow data list``."""
    if not versions:
        return "no data added yet: the base dataset only (add some with `mnist-flow data add`)"
    lines = ["ID            ADDED (UTC)          IMAGES  HELD OUT  PER CLASS"]
    for v in versions:
        per_class = " ".join(
            f"{class_names[int(k)] if int(k) < len(class_names) else k}:{n}"
            for k, n in v.counts.items()
        )
        lines.append(
            f"{v.id}  {v.created_at[:19].replace('T', ' ')}  {v.n_images:>6}  "
            f"{v.n_heldout:>8}  {per_class}"
        )
    return "\n".join(lines)
