"""Corrections people record on the page, waiting to become a data batch.

A correction is an uploaded image and the class it shows. It is checked (it decodes and
holds ink, exactly as ``mnist-flow predict`` and ``mnist-flow data add`` prepare images)
and written atomically under a name of the server's choosing (a random UUID, never the
client's file name) into ``<data store>/.pending/<dataset>/<class>/``: a folder of class
subfolders, the layout ``mnist-flow data add`` reads. :meth:`Corrections.submit` moves the
pending folder aside with one rename, so corrections recorded meanwhile start a new one,
and adds it through :func:`tasks.data.versions.add_batch` (same checks, same version
store); the caller emits the same ``mnist-flow.data.added`` event as ``data add``.
Recording and submitting lock the store's ``.pending`` folder, so that the worker processes
of one server (``serve --workers``), or two servers on one store, never move the folder
aside while another writes into it.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from tasks.data.datasets import DatasetSpec
from tasks.data.ingest import Problem
from tasks.data.versions import DataStore, DataVersion, add_batch
from tasks.errors import DataError

PENDING = ".pending"


@dataclass(frozen=True)
class Correction:
    """One recorded correction: its file (relative to the pending folder) and its class."""

    file: str
    label: int
    class_name: str


class Corrections:
    """The pending corrections of one dataset in one data store."""

    def __init__(self, store: DataStore, spec: DatasetSpec, n_classes: int) -> None:
        self.store = store
        self.spec = spec
        self.names = spec.names_of_classes(n_classes)
        self.folder = store.root / PENDING / spec.name

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock of the store's pending folders: ``flock`` on the ``.pending`` folder,
        opened each time, so that threads as well as processes wait for one another."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(self, data: bytes, label: int) -> int:
        """Store an image (already checked) as a correction of class ``label``; the count waiting.

        The bytes are re-encoded as PNG, so the file holds pixels only.
        """
        target = self.folder / str(label)
        name = f"{uuid.uuid4().hex}.png"
        with self._locked():
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{name}.tmp"
            try:
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
                    img.save(tmp, format="PNG")
                os.replace(tmp, target / name)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise DataError(f"cannot write correction into {target}: {exc}") from exc
            return self._count()

    def _files(self, folder: Path | None = None) -> list[Path]:
        root = folder or self.folder
        if not root.is_dir():
            return []
        return sorted(p for p in root.glob("*/*.png") if not p.name.startswith("."))

    def _count(self) -> int:
        return len(self._files())

    def count(self) -> int:
        """The number of corrections waiting."""
        return self._count()

    def list(self) -> list[Correction]:
        """The corrections waiting, by class then name."""
        found = []
        for path in self._files():
            label = int(path.parent.name)
            name = self.names[label] if label < len(self.names) else str(label)
            found.append(Correction(str(path.relative_to(self.folder)), label, name))
        return found

    def submit(self) -> tuple[DataVersion, list[Problem]]:
        """Add the waiting corrections as a data batch; the version and the images skipped.

        Images the checks refuse (a duplicate of an earlier batch, say) are skipped, as
        ``mnist-flow data add --skip-bad`` does; they are reported, not kept.

        Raises
        ------
        DataError
            Nothing is waiting, or the batch is refused (the corrections stay pending).
        """
        with self._locked():
            if not self._files():
                raise DataError("no corrections waiting: record some first")
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            batch = self.folder.with_name(
                f"{self.spec.name}-corrections-{stamp}-{uuid.uuid4().hex[:6]}"
            )
            os.replace(self.folder, batch)
        try:
            version, skipped = add_batch(self.store, self.spec, [str(batch)], skip_bad=True)
        except BaseException:
            self._restore(batch)
            raise
        shutil.rmtree(batch, ignore_errors=True)
        return version, skipped

    def _restore(self, batch: Path) -> None:
        """Put the files of a refused submission back among the pending ones."""
        with self._locked():
            for path in self._files(batch):
                target = self.folder / path.parent.name
                target.mkdir(parents=True, exist_ok=True)
                os.replace(path, target / path.name)
            shutil.rmtree(batch, ignore_errors=True)
