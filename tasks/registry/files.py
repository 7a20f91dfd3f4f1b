"""The registry's folder and files: where it lives, its JSON records and pointers, copies,
and the checks of a model before it is registered."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from platformdirs import user_data_path

from nn.errors import ModelFileError
from nn.io import load_model, metadata_path, weights_digest
from tasks.errors import MnistFlowError, RegistryError
from tasks.registry.promotion import VERSION_RE, ModelVersion, check_accuracy, check_dataset

ENV_VAR = "MNIST_FLOW_REGISTRY"


def default_registry_root() -> Path:
    """``$MNIST_FLOW_REGISTRY`` if set and non-empty, else ``registry`` in the user data
    folder (``platformdirs.user_data_path("mnist-flow")``)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return user_data_path("mnist-flow", appauthor=False) / "registry"


def now() -> str:
    """The time now, UTC, ISO 8601 with microseconds (registration times)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` and flush it to disk."""
    shutil.copyfile(src, dst)
    with open(dst, "rb") as fh:
        os.fsync(fh.fileno())


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; a :class:`RegistryError` names ``what`` and the path."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{what} {path} is unreadable or not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{what} {path} must hold a JSON object, got {type(data).__name__}")
    return data


def metadata_dataset(metadata: dict[str, Any]) -> str | None:
    """The dataset name recorded in nn.io model metadata, if any."""
    value = metadata.get("dataset")
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) else None


MODEL_FILE = "model.npz"
VERSION_FILE = "version.json"


def read_entry(directory: Path) -> ModelVersion:
    """The version record in ``directory``, checked (a :class:`RegistryError` if corrupted);
    its model files are not read (:meth:`tasks.registry.store.Registry.broken` checks them)."""
    path = directory / VERSION_FILE
    data = read_json(path, "version record")
    try:
        if data["version"] != directory.name:
            raise ValueError(f"it names version {data['version']!r}")
        entry = ModelVersion(
            version=data["version"],
            created_at=str(data["created_at"]),
            dataset=check_dataset(data["dataset"]),
            test_accuracy=data["test_accuracy"],
            path=directory / MODEL_FILE,
        )
    except (KeyError, ValueError, MnistFlowError) as exc:
        raise RegistryError(f"version record {path} is corrupted: {exc}") from exc
    return entry


def read_pointer(path: Path, models_dir: Path) -> dict[str, Any]:
    """The champion pointer at ``path``, checked against the versions in ``models_dir``."""
    data = read_json(path, "champion pointer")
    expected = path.name.removeprefix("champion-").removesuffix(".json")
    try:
        ok = (
            isinstance(data.get("version"), str)
            and VERSION_RE.match(data["version"])
            and data.get("dataset") == expected
            and isinstance(data.get("promoted_at"), str)
            and check_accuracy(data.get("test_accuracy"), "test_accuracy") >= 0
        )
    except RegistryError:
        ok = False
    if not ok:
        raise RegistryError(
            f"champion pointer {path} is corrupted: expected version 'vNNNN', dataset "
            f"'{expected}', test_accuracy in [0, 1] and promoted_at; got {data!r}"
        )
    if not (models_dir / data["version"]).is_dir():
        raise RegistryError(
            f"champion pointer {path} names {data['version']}, which is not in {models_dir}"
        )
    return data


class Candidate(NamedTuple):
    """A model checked for registration; ``digest``: :func:`nn.io.weights_digest`."""

    model_path: Path
    meta_path: Path
    dataset: str
    accuracy: float
    metrics_json: str
    digest: str


def check_candidate(model_path: Path | str, metrics: dict, dataset: str) -> Candidate:
    """Validate the inputs of a registration before taking the lock."""
    check_dataset(dataset)
    model_path = Path(model_path)
    meta_path = metadata_path(model_path)
    for path, what in ((model_path, "model file"), (meta_path, "model metadata")):
        if not path.is_file():
            raise RegistryError(f"cannot register {model_path}: {what} {path} does not exist")
    recorded = metadata_dataset(read_json(meta_path, "model metadata"))
    if recorded is not None and recorded != dataset:
        raise RegistryError(
            f"cannot register {model_path} for dataset '{dataset}': "
            f"its metadata {meta_path} says dataset '{recorded}'"
        )
    if not isinstance(metrics, dict) or "test_accuracy" not in metrics:
        raise RegistryError(f"metrics for {model_path} must be a dict with 'test_accuracy'")
    accuracy = check_accuracy(metrics["test_accuracy"], "metrics['test_accuracy']")
    try:
        metrics_json = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"metrics for {model_path} are not JSON-serialisable: {exc}") from exc
    try:
        digest = weights_digest(load_model(model_path)[0])
    except ModelFileError as exc:
        raise RegistryError(
            f"cannot register {model_path}: {exc}; the registry is unchanged"
        ) from exc
    return Candidate(model_path, meta_path, dataset, accuracy, metrics_json + "\n", digest)
