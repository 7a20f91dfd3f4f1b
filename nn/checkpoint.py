"""Checkpoints: a training run saved mid-way, so it can resume exactly where it stopped.

A checkpoint is a model file pair (:func:`nn.io.save_model`: ``c.npz`` + ``c.json``)
plus the optimizer's state arrays in ``c.state.npz``. The JSON holds the rest under
``"checkpoint"``: the epoch, the optimizer's kind, step count and state file's SHA-256,
and the generator's bit-generator state. The state file is written first, the JSON
last, so a pair left inconsistent by a kill is refused on loading, never half-used.
Resuming continues the run bit for bit (weights, optimizer state, schedule, random stream).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nn.errors import ConfigError, ModelFileError
from nn.io import load_model, metadata_path, save_model, write_bytes_atomic
from nn.model import MLP
from nn.optim import Adam, Optimizer
from nn.train import TrainState

__all__ = ["load_checkpoint", "remove_checkpoint", "save_checkpoint", "state_path"]


def state_path(path: str | Path) -> Path:
    """The optimizer-state file of checkpoint ``path`` (``c.npz`` -> ``c.state.npz``)."""
    path = Path(path)
    return path.with_name(path.stem + ".state.npz")


def _rng_from(state: dict[str, Any], path: Path) -> np.random.Generator:
    try:
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: random-generator state is not usable ({exc})") from exc
    return np.random.Generator(bit_generator)


def save_checkpoint(
    path: str | Path,
    model: MLP,
    state: TrainState,
    rng: np.random.Generator,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``model``, ``state`` and ``rng``'s position to ``path`` (``.npz``) and beside it.

    Parameters
    ----------
    path:
        The weights file; its folder must exist.
    model, state, rng:
        What :func:`nn.train.train` used and updated; ``state.optimizer`` must be set.
    metadata:
        JSON-serialisable extra fields (the training settings, a trial's identity, ...);
        the key ``checkpoint`` is reserved.
    """
    if state.optimizer is None:
        raise ConfigError("cannot save a checkpoint before the optimizer exists")
    metadata = dict(metadata or {})
    if "checkpoint" in metadata:
        raise ConfigError("metadata key 'checkpoint' is reserved by the checkpoint format")
    path = Path(path)
    buffers = state.optimizer.state_buffers()
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **{f"s{i}": b for i, b in enumerate(buffers)})
    data = buf.getvalue()
    try:
        write_bytes_atomic(state_path(path), data)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot write the checkpoint: {exc}") from exc
    metadata["checkpoint"] = {
        "epoch": int(state.epoch),
        "optimizer": {
            "name": "adam" if isinstance(state.optimizer, Adam) else "sgd",
            "t": int(state.optimizer.t),
            "buffers": len(buffers),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "rng": dict(rng.bit_generator.state),
    }
    save_model(path, model, metadata)


def load_checkpoint(
    path: str | Path, optimizer: Optimizer
) -> tuple[MLP, TrainState, np.random.Generator, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path:
        The weights file.
    optimizer:
        A new optimizer built from the same settings (``make_optimizer``); it receives
        the saved state.

    Returns
    -------
    (model, state, rng, metadata)
        Ready for ``train(model, ..., rng=rng, state=state)``.

    Raises
    ------
    ModelFileError
        Naming the file, if any of the three files is missing, corrupted or does not
        match the others, or the optimizer is not the kind that was saved.
    """
    path = Path(path)
    model, meta = load_model(path)
    info = meta.get("checkpoint")
    if not isinstance(info, dict):
        raise ModelFileError(f"{metadata_path(path)}: not a checkpoint (no 'checkpoint' entry)")
    try:
        epoch, saved = int(info["epoch"]), info["optimizer"]
        t, n_buffers, digest = int(saved["t"]), int(saved["buffers"]), str(saved["sha256"])
        kind = str(saved["name"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{metadata_path(path)}: malformed checkpoint entry ({exc})") from exc
    if kind != ("adam" if isinstance(optimizer, Adam) else "sgd"):
        raise ModelFileError(f"{path}: saved with optimizer {kind!r}, cannot resume another")
    spath = state_path(path)
    try:
        raw = spath.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{spath}: cannot read the optimizer state: {exc}") from exc
    if hashlib.sha256(raw).hexdigest() != digest:
        raise ModelFileError(f"{spath}: SHA-256 does not match its checkpoint metadata")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            buffers = [npz[f"s{i}"] for i in range(n_buffers)]
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"{spath}: not a readable optimizer state ({exc})") from exc
    try:
        optimizer.restore(model.parameters(), t, buffers)
    except ValueError as exc:
        raise ModelFileError(f"{spath}: {exc}") from exc
    rng = _rng_from(info.get("rng"), path)
    return model, TrainState(epoch=epoch, optimizer=optimizer), rng, meta


def remove_checkpoint(path: str | Path) -> None:
    """Delete the files of checkpoint ``path`` (JSON first, so no half is ever read)."""
    path = Path(path)
    for file in (metadata_path(path), path, state_path(path)):
        file.unlink(missing_ok=True)
