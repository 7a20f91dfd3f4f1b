"""A registry with a trained champion, and the app serving it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from flows.serve.app import create_app
from flows.serve.model import ChampionSource
from nn.io import load_model, save_model
from tasks.data.versions import DataStore
from tasks.registry.store import Registry
from tests.tasks.digit_images import mnist10k, train_digit_model


@dataclass(frozen=True)
class Trained:
    """Two models of the mnist10k digits (epochs 2 and 1) and the 2,000 held-out digits."""

    first: Path
    second: Path
    X_test: np.ndarray
    y_test: np.ndarray


def _as_mnist(path: Path) -> Path:
    from nn.io import RESERVED_KEYS

    model, metadata = load_model(path)
    kept = {k: v for k, v in metadata.items() if k not in RESERVED_KEYS}
    save_model(path, model, {**kept, "dataset": {"name": "mnist"}})
    return path


@pytest.fixture(scope="session")
def trained(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    X_train, y_train, X_test, y_test = mnist10k(mnist_dir)
    folder = tmp_path_factory.mktemp("serve-models")
    first = _as_mnist(train_digit_model(X_train, y_train, folder / "first.npz", epochs=2))
    second = _as_mnist(train_digit_model(X_train[:3000], y_train[:3000], folder / "second.npz", 1))
    return Trained(first, second, X_test, y_test)


def register(registry: Registry, path: Path, accuracy: float) -> str:
    """Register ``path`` with ``accuracy`` and make it the champion if it beats the champion."""
    version, _ = registry.register_and_promote(
        path, {"test_accuracy": accuracy, "test_loss": 0.1}, dataset="mnist", margin=0.0
    )
    return version.version


@dataclass
class Served:
    app: object
    registry: Registry
    store: DataStore
    source: ChampionSource
    emitted: list


@pytest.fixture
def served(trained: Trained, tmp_path: Path) -> Served:
    """The app serving the first model as champion v0001; events recorded, not sent."""
    registry = Registry(tmp_path / "registry")
    register(registry, trained.first, 0.95)
    store = DataStore(tmp_path / "store")
    source = ChampionSource(registry, "mnist", interval=0.05)
    emitted: list = []
    app = create_app(
        source, dataset="mnist", store=store, emit=lambda v, s: emitted.append((v, s)) or "e1"
    )
    return Served(app, registry, store, source, emitted)
