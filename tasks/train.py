"""Train the final model: a Prefect task around :func:`tasks.fitting.fit.fit`.

The task logs one line per epoch, keeps a progress artifact up to date, and saves the
model into ``<cache_dir>/models/<key>.npz``, where ``key`` (:func:`final_key`) names
everything that determines the weights; the metadata keeps what the task returns, so a
re-run with the same inputs returns the saved model without training.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from nn.checkpoint import load_checkpoint
from nn.errors import ModelFileError
from nn.io import load_model, save_model
from nn.train import EpochRecord, TrainConfig, TrainState, optimizer_for
from tasks.cache import content_key, reused
from tasks.fitting import fit as fitting
from tasks.fitting.augment import default_augment, make_augmenter
from tasks.fitting.fit import BLAS_THREADS, fit
from tasks.settings import resolve

PROGRESS_KEY = "mnist-train-progress"
"""Key of the progress artifact updated after every epoch."""


@dataclass(frozen=True)
class FinalModel:
    """A trained model saved in the cache (small and picklable).

    ``model_path`` is the saved ``.npz`` (metadata beside it as ``.json``), named by the
    cache ``key``; ``history`` has one ``EpochRecord.to_dict()`` per epoch trained;
    ``best_epoch`` (1-based) is the epoch whose weights were kept; ``seconds`` the wall
    time of the training; ``params`` the ``TrainParams.model_dump()``.
    """

    model_path: str
    key: str
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)


def final_key(data: Any, params: dict[str, Any], seed: int, start: str | None = None) -> str:
    """The content key naming the model trained on ``data`` (a ``PreparedData``, named by
    its ``key``) with ``params`` (``TrainParams.model_dump()``) and ``seed``, continuing
    the checkpoint whose weights have the SHA-256 ``start`` (None: none)."""
    return content_key(
        version=fitting.CODE_VERSION, data=data.key, params=params, seed=int(seed), start=start
    )


def _start_id(start_from: str | None) -> str | None:
    """What names a checkpoint to start from: the SHA-256 of its weights (None: none)."""
    if start_from is None:
        return None
    meta = json.loads(Path(start_from).with_suffix(".json").read_text(encoding="utf-8"))
    return str(meta["weights_sha256"])


def _saved(path: Path) -> FinalModel | None:
    """The model saved at ``path`` by an earlier run, if its files are there and intact."""
    try:
        _, meta = load_model(path)
        return FinalModel(model_path=str(path), **meta["final"])
    except (ModelFileError, KeyError, TypeError):
        return None


def _resume(start_from: str | None, config: TrainConfig, seed: int) -> tuple[Any, ...]:
    """(model, state, rng, earlier records) to continue ``start_from``; a new run if None."""
    if start_from is None:
        return None, TrainState(), np.random.default_rng(seed), []
    model, state, rng, meta = load_checkpoint(start_from, optimizer_for(config))
    return model, state, rng, list(meta.get("records", []))


def _run_name() -> str:
    from prefect.runtime import task_run

    params = task_run.parameters
    hidden = "-".join(str(h) for h in params["params"].get("hidden", []))
    return f"train-final-{hidden}-{params['params'].get('epochs')}ep-seed{params['seed']}"


@task(
    name="train-final",
    task_run_name=_run_name,
    cache_policy=NO_CACHE,
)
def train_final(
    data: Any,
    params: dict[str, Any],
    *,
    seed: int,
    cache_dir: str,
    threads: int | None = None,
    start_from: str | None = None,
) -> FinalModel:
    """Train the final model on the training split, monitored on the validation split.

    Parameters
    ----------
    data, params:
        ``PreparedData`` (X_train ``(n, 784)`` float32, y_train ``(n,)`` int64, X_val,
        y_val); ``TrainParams.model_dump()`` (validated by the flow).
    seed:
        Draws the initial weights, then drives shuffling and augmentation.
    cache_dir:
        Cache root; the model goes to ``<cache_dir>/models/<key>.npz``.
    threads:
        BLAS threads; None: :data:`tasks.fitting.fit.BLAS_THREADS`. Not part of the
        cache key: it changes the speed and the rounding of the sums, not what is trained.
    start_from:
        A search trial's checkpoint to continue (trained with these very settings and
        data): training resumes at its epoch and its epochs lead the history.
    """
    logger = get_run_logger()
    key = final_key(data, params, seed, _start_id(start_from))
    path = Path(cache_dir) / "models" / f"{key}.npz"
    if (saved := _saved(path)) is not None:
        logger.info("reusing the final model %s", path)
        return reused(saved, path)
    hyper = resolve(params, explicit=params)  # checked as given, nothing repaired
    config = TrainConfig.from_values(hyper)
    data.verify()  # never train on a cached array that changed since it was prepared
    splits = data.load()
    augment_config = default_augment(data.name, hyper["augment"], hyper["augment_strength"])
    progress = create_progress_artifact(
        0.0, key=PROGRESS_KEY, description=f"Final training: 0/{config.epochs} epochs"
    )

    def on_epoch(record: EpochRecord) -> None:
        val = (
            f" val_loss={record.val_loss:.4f} val_acc={record.val_accuracy:.4f}"
            if record.val_loss is not None
            else ""
        )
        logger.info(
            "epoch %d/%d train_loss=%.4f train_acc=%.4f%s lr=%.4g (%.1f s)",
            record.epoch,
            config.epochs,
            record.train_loss,
            record.train_accuracy,
            val,
            record.lr,
            record.seconds,
        )
        update_progress_artifact(
            progress,
            100.0 * record.epoch / config.epochs,
            description=f"Final training: {record.epoch}/{config.epochs} epochs",
        )

    start = time.perf_counter()
    model, state, rng, earlier = _resume(start_from, config, seed)
    if start_from is not None:
        logger.info("continuing %s after epoch %d", start_from, state.epoch)
    model, history = fit(
        splits,
        hyper["hidden"],
        data.n_classes,
        config,
        rng=rng,
        callback=on_epoch,
        augment=make_augmenter(augment_config),
        threads=BLAS_THREADS if threads is None else threads,
        model=model,
        state=state,
    )
    if not history.records:  # the trial had run every epoch already
        history.best_epoch = state.epoch
    seconds = time.perf_counter() - start
    if history.stopped_early:
        logger.info("early stopping: kept the weights of epoch %d", history.best_epoch)
    update_progress_artifact(progress, 100.0, description="Final training: done")

    final = FinalModel(
        model_path=str(path),
        key=key,
        history=earlier + history.to_dicts(),
        best_epoch=int(history.best_epoch),
        stopped_early=bool(history.stopped_early),
        seconds=seconds,
        params=dict(params),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(
        path,
        model,
        {
            "training": config.to_dict(),
            "augment": augment_config.to_dict(),
            "preprocessing": dict(data.preprocessing),
            "dataset": {"name": data.name, "checksums": dict(data.checksums)},
            "seed": int(seed),
            "best_epoch": int(history.best_epoch),
            "final": {k: v for k, v in dataclasses.asdict(final).items() if k != "model_path"},
        },
    )
    return final
