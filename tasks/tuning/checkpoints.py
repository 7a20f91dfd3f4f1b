"""Checkpoints of search trials, so a promoted trial continues instead of starting again.

Resuming (:mod:`nn.checkpoint`) is exact, so a promoted trial ends with the weights it
would have had trained in one go; a missing checkpoint only costs training from the start.
Files are ``<directory>/<key>-e<epoch>.npz`` (+ ``.json``, ``.state.npz``), where ``key``
names everything that determines the trial's run, so no trial resumes another's; a trial
keeps only its latest checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nn.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from nn.errors import ModelFileError
from nn.model import MLP
from nn.train import TrainConfig, TrainState, optimizer_for
from tasks.cache import content_key

__all__ = ["CheckpointStore", "Resumed"]

Resumed = tuple[MLP, TrainState, np.random.Generator, list[dict[str, Any]]]
"""What a loaded checkpoint gives back: model, state, generator, the earlier epochs' records."""


class CheckpointStore:
    """Trial checkpoints in ``directory``; ``identity`` (data, code) is part of every key."""

    def __init__(self, directory: str | Path, identity: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.identity = dict(identity)

    def key(self, spec: Any) -> str:
        """Hex digest naming the run of trial ``spec`` (a ``TrialSpec``), whatever its epochs."""
        return content_key(
            identity=self.identity,
            params=spec.params,
            base=spec.base,
            seed=spec.seed,
            index=spec.index,
            horizon=spec.schedule_epochs,
        )

    def path(self, spec: Any, epoch: int) -> Path:
        """The weights file of ``spec``'s checkpoint after ``epoch`` epochs."""
        return self.directory / f"{self.key(spec)}-e{int(epoch)}.npz"

    def load(self, spec: Any, epoch: int, config: TrainConfig) -> Resumed | None:
        """``spec``'s checkpoint after ``epoch`` epochs, or None if it is missing or unusable."""
        path = self.path(spec, epoch)
        if not path.is_file():
            return None
        try:
            model, state, rng, meta = load_checkpoint(path, optimizer_for(config))
        except ModelFileError:
            return None
        if state.epoch != epoch:
            return None
        return model, state, rng, list(meta.get("records", []))

    def save(
        self,
        spec: Any,
        model: MLP,
        state: TrainState,
        rng: np.random.Generator,
        records: list[dict[str, Any]],
    ) -> None:
        """Write ``spec``'s checkpoint after ``state.epoch`` epochs; drop its older ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(spec, state.epoch)
        save_checkpoint(path, model, state, rng, {"trial": spec.index, "records": records})
        for old in self.directory.glob(f"{self.key(spec)}-e*.npz"):
            if old != path and not old.name.endswith(".state.npz"):
                remove_checkpoint(old)

    def remove(self, specs: list[Any], keep: Path | None = None) -> None:
        """Delete the checkpoints of ``specs`` (every epoch), except the file ``keep``."""
        for key in {self.key(spec) for spec in specs}:
            for path in self.directory.glob(f"{key}-e*.npz"):
                if path != keep and not path.name.endswith(".state.npz"):
                    remove_checkpoint(path)
        if self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()
