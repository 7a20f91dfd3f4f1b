"""The registry's folder and files: where it lives, reading its JSON, copying model files."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from platformdirs import user_data_path

from tasks.errors import RegistryError

ENV_VAR = "MNIST_FLOW_REGISTRY"


def default_registry_root() -> Path:
    """Return the default registry directory.

    ``$MNIST_FLOW_REGISTRY`` if set and non-empty, else ``registry`` in the user data folder,
    ``platformdirs.user_data_path("mnist-flow")``: ``$XDG_DATA_HOME/mnist-flow`` or
    ``~/.local/share/mnist-flow`` on Linux, ``~/Library/Application Support/mnist-flow`` on
    macOS, ``%LOCALAPPDATA%\\mnist-flow`` on Windows.
    """
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
