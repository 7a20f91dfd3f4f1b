"""The model a server answers with: a fixed file, or its champion, swapped when it changes.

A request takes the current :class:`ServedModel` once and scores with it, so a swap never
changes the model under a request in flight, and the response names the version that
answered. :class:`ChampionSource` re-reads the registry's champion pointer at most every
``interval`` seconds (on the request that finds the reading stale), and loads a new model
only when the pointer names another version: a new champion is served within seconds,
without a restart, and a request costs one ``stat`` of the pointer in between.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.data.datasets import get_dataset
from tasks.errors import MnistFlowError
from tasks.images.classify import Predictor, load_predictor
from tasks.registry.files import metadata_dataset
from tasks.registry.store import Registry


class NoModel(MnistFlowError):
    """No model can be served (no champion yet, or its files are missing or broken)."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded model and what a response says about it."""

    predictor: Predictor
    version: str  # the registry version, or the file name of a model given by path
    dataset: str
    test_accuracy: float | None
    class_names: tuple[str, ...]

    def describe(self) -> dict[str, object]:
        """The ``model`` object of a response."""
        return {
            "version": self.version,
            "dataset": self.dataset,
            "test_accuracy": self.test_accuracy,
        }


def _served(
    predictor: Predictor, version: str, dataset: str, accuracy: float | None
) -> ServedModel:
    try:
        names = get_dataset(dataset).names_of_classes(predictor.n_classes)
    except MnistFlowError:  # a model of a folder dataset: its classes are numbered
        names = [str(k) for k in range(predictor.n_classes)]
    if len(names) != predictor.n_classes:
        names = [str(k) for k in range(predictor.n_classes)]
    return ServedModel(predictor, version, dataset, accuracy, tuple(names))


def model_from_file(path: str | Path) -> ServedModel:
    """A model file (``.npz`` + ``.json``) served as it is; never swapped."""
    predictor = load_predictor(path)
    name = metadata_dataset(predictor.metadata) or "mnist"
    return _served(predictor, Path(path).name, name, _recorded_accuracy(Path(path)))


def _recorded_accuracy(path: Path) -> float | None:
    """The test accuracy in the ``metrics.json`` beside a model (a run folder's), if any."""
    try:
        value = json.loads((path.parent / "metrics.json").read_text(encoding="utf-8"))
        accuracy = value.get("test_accuracy") if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None
    return float(accuracy) if isinstance(accuracy, int | float) else None


class FixedSource:
    """Serves one model file (``--model``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._model = model_from_file(self.path)

    def current(self) -> ServedModel:
        return self._model


class ChampionSource:
    """Serves the champion of ``dataset`` in ``registry``, following promotions and rollbacks."""

    def __init__(self, registry: Registry, dataset: str, interval: float = 1.0) -> None:
        self.registry = registry
        self.dataset = dataset
        self.interval = interval
        self._lock = threading.Lock()
        self._model: ServedModel | None = None
        self._error: str | None = None
        self._checked = float("-inf")
        self._pointer_mtime: int | None = None

    def _pointer_stamp(self) -> int | None:
        try:
            return self.registry.pointer_path(self.dataset).stat().st_mtime_ns
        except OSError:
            return None

    def _load(self) -> None:
        """Load the champion the pointer names (called with the lock held)."""
        try:
            champion = self.registry.champion(self.dataset)
        except MnistFlowError as exc:
            self._model, self._error = None, f"registry {self.registry.root}: {exc}"
            return
        if champion is None:
            self._model = None
            self._error = (
                f"registry {self.registry.root} has no champion for {self.dataset} yet; "
                "train one with `mnist-flow train` or `mnist-flow run`"
            )
            return
        if self._model is not None and self._model.version == champion.version:
            return
        try:
            predictor = load_predictor(champion.path)
        except MnistFlowError as exc:
            self._model = None
            self._error = f"champion {champion.version} of {self.dataset} cannot be loaded: {exc}"
            return
        self._model = _served(predictor, champion.version, self.dataset, champion.test_accuracy)
        self._error = None

    def refresh(self, force: bool = False) -> None:
        """Re-read the champion pointer if the last reading is older than ``interval``."""
        now = time.monotonic()
        if not force and now - self._checked < self.interval:
            return
        with self._lock:
            if not force and now - self._checked < self.interval:
                return
            stamp = self._pointer_stamp()
            if force or stamp != self._pointer_mtime or self._model is None:
                self._load()
                self._pointer_mtime = stamp
            self._checked = time.monotonic()

    def current(self) -> ServedModel:
        """The model to answer with now.

        Raises
        ------
        NoModel
            There is no champion, or it cannot be loaded (the message says why).
        """
        self.refresh()
        model = self._model
        if model is None:
            raise NoModel(self._error or f"no champion for {self.dataset}")
        return model
