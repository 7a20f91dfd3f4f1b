"""Tests of single trials, the trial store and the parallel runner (loky) on real data."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nn.errors import ConfigError
from nn.io import load_model
from tasks.data.prepare import PreparedData
from tasks.errors import CacheError, SearchError
from tasks.tuning.overrides import build_space
from tasks.tuning.runner import data_fingerprint, halving_rungs, run_search
from tasks.tuning.space import Choice
from tasks.tuning.trials import (
    TrialArrays,
    TrialResult,
    TrialSpec,
    TrialStore,
    config_from_params,
    run_trial,
)
from tests.tasks.search_data import small_fashion

GOOD = {"lr": 0.05, "batch_size": 64, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
        "schedule": "cosine", "decay": 0.5, "hidden": 64, "optimizer": "sgd"}  # fmt: skip


@pytest.fixture(scope="module")
def data(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    return small_fashion(fashion_dir, tmp_path_factory)


def explode(extras: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """Extras handler standing in for a buggy augmentation: raises when asked to."""
    if extras["mode"] == "raise":
        raise RuntimeError("augmentation exploded")
    return {}


def test_trial_trains_and_scores_on_validation(data: PreparedData) -> None:
    result = run_trial(TrialSpec(0, 0, GOOD, epochs=2), data, blas_threads=1)
    assert result.status == "ok" and result.error is None
    assert len(result.val_accuracy) == len(result.val_loss) == 2
    assert result.best_val_accuracy == max(result.val_accuracy)
    assert result.best_val_accuracy > 0.6  # 10 classes: chance is 0.1
    assert result.seconds > 0
    # same seed and index: bit-identical; arrays in memory give the same as memory-mapped files
    arrays = TrialArrays.from_data(data)
    again = run_trial(TrialSpec(0, 0, GOOD, epochs=2), arrays, blas_threads=1)
    assert again.val_accuracy == result.val_accuracy and again.val_loss == result.val_loss
    other = run_trial(TrialSpec(1, 0, GOOD, epochs=2), data, blas_threads=1)
    assert other.val_loss != result.val_loss  # trial 1 has its own stream
    assert json.loads(json.dumps(result.to_dict())) == result.to_dict()
    assert TrialResult.from_dict(result.to_dict()) == result


def test_diverging_and_raising_trials_are_recorded(data: PreparedData) -> None:
    absurd = {**GOOD, "lr": 10.0, "batch_size": 32}
    diverged = run_trial(TrialSpec(0, 0, absurd, epochs=1), data)
    assert diverged.status == "diverged"
    assert re.search(r"loss became (nan|inf)", diverged.error), diverged.error
    assert diverged.best_val_accuracy is None
    failed = run_trial(TrialSpec(0, 0, {**GOOD, "mode": "raise"}, 1), data, extras_handler=explode)
    assert failed.status == "failed" and failed.error == "RuntimeError: augmentation exploded"


def test_config_from_params_splits_and_repairs() -> None:
    config, hidden, extras = config_from_params(
        {**GOOD, "momentum": 0.0, "warmup_epochs": 5, "augment": "shift"}, epochs=3
    )
    assert (hidden, extras) == (64, {"augment": "shift"})
    # Nesterov off without momentum; the warm-up at most a quarter of the epochs.
    assert config.epochs == 3 and config.nesterov is False and config.warmup_epochs == 0
    config, _, _ = config_from_params({**GOOD, "warmup_epochs": 5}, epochs=12)
    assert config.warmup_epochs == 3
    assert config.lr == 0.05 and config.schedule == "cosine"


@pytest.mark.slow  # worker processes
def test_search_survives_diverging_and_raising_trials(data: PreparedData) -> None:
    space = build_space(
        {"lr": Choice((0.05, 10.0)), "mode": "ok,raise", "hidden": 32, "batch_size": 32,
         "momentum": 0.9}
    )  # fmt: skip
    seen: list[tuple[int, int]] = []
    result = run_search(
        data, space, n_trials=6, trial_epochs=1, seed=1, n_jobs=2, extras_handler=explode,
        on_trial=lambda r, done, total: seen.append((done, total)),
    )  # fmt: skip
    assert seen == [(i, 6) for i in range(1, 7)]
    statuses = {}
    for t in result.trials:
        expected = "failed" if t["params"]["mode"] == "raise" else "ok"
        if expected == "ok" and t["params"]["lr"] == 10.0:
            expected = "diverged"
        assert t["status"] == expected, t
        statuses[t["trial"]] = t["status"]
    assert set(statuses.values()) == {"ok", "diverged", "failed"}  # seed 1 draws all three
    assert [t["trial"] for t in result.trials] == list(range(6))
    best = max(
        (t for t in result.trials if t["status"] == "ok"), key=lambda t: t["best_val_accuracy"]
    )
    assert result.best_trial == best["trial"] and result.best_params == best["params"]
    assert result.best_val_accuracy == best["best_val_accuracy"]
    assert (result.n_trained, result.n_cached) == (6, 0)


def test_all_trials_failing_is_an_error(data: PreparedData) -> None:
    space = build_space({"lr": 10.0, "hidden": 32, "batch_size": 32, "momentum": 0.9})
    with pytest.raises(SearchError, match="no trial of the search finished"):
        run_search(data, space, n_trials=2, trial_epochs=1, n_jobs=1)


def test_halving_rungs() -> None:
    assert halving_rungs(12, 9) == [(12, 1), (4, 3), (2, 9)]
    assert halving_rungs(12, 3) == [(12, 1), (4, 3)]
    assert halving_rungs(8, 4, factor=2) == [(8, 1), (4, 2), (2, 4)]
    assert halving_rungs(12, 2) == [(12, 2)]  # too few epochs to halve
    assert halving_rungs(1, 9) == [(1, 9)]  # nothing to choose from
    assert halving_rungs(2, 9) == [(2, 3), (1, 9)]


def test_halving_promotes_the_best_of_each_round(data: PreparedData) -> None:
    space = build_space({"hidden": 32, "lr": "0.003:0.1:log"})
    result = run_search(
        data, space, n_trials=4, trial_epochs=2, seed=1, n_jobs=2, halving=True, halving_factor=2
    )
    first = [t for t in result.trials if t["rung"] == 0]
    second = [t for t in result.trials if t["rung"] == 1]
    assert [t["epochs"] for t in first] == [1] * 4 and [t["epochs"] for t in second] == [2] * 2
    ranked = sorted(first, key=lambda t: t["best_val_accuracy"], reverse=True)
    assert {t["trial"] for t in second} == {t["trial"] for t in ranked[:2]}
    assert result.best_trial in {t["trial"] for t in second}
    assert result.best_val_accuracy == max(t["best_val_accuracy"] for t in second)


def test_store_round_trip_and_keys(tmp_path: Path) -> None:
    store = TrialStore(tmp_path / "trials", {"data": "abc", "code": "v1"})
    spec = TrialSpec(2, 0, dict(GOOD), epochs=3)
    result = TrialResult(2, 0, 3, 0, dict(GOOD), "ok", [0.5, 0.6, 0.7], [1.0, 0.9, 0.8], 0.7, 1.5)
    assert store.get(spec) is None
    path = store.put(spec, result)
    assert path.parent == tmp_path / "trials" and [p.name for p in path.parent.iterdir()] == [
        path.name
    ]
    assert store.get(spec) == dataclasses.replace(result, cached=True)
    keys = {
        store.key(spec),
        store.key(dataclasses.replace(spec, epochs=4)),
        store.key(dataclasses.replace(spec, index=3)),
        store.key(dataclasses.replace(spec, seed=1)),
        store.key(dataclasses.replace(spec, params={**GOOD, "lr": 0.050001})),
        TrialStore(tmp_path / "trials", {"data": "abc", "code": "v2"}).key(spec),
        TrialStore(tmp_path / "trials", {"data": "abd", "code": "v1"}).key(spec),
    }
    assert len(keys) == 7
    path.write_text('{"format_version": 1, "result": {"trial": ')  # truncated file
    assert store.get(spec) is None


def test_fingerprint_follows_the_data(data: PreparedData) -> None:
    arrays = TrialArrays.from_data(data)
    assert data_fingerprint(data) == data_fingerprint(data)
    changed = dataclasses.replace(arrays, y_val=np.roll(arrays.y_val, 1))
    assert data_fingerprint(arrays) != data_fingerprint(changed)
    other = dataclasses.replace(data, split="split-0123")  # another seed or validation size
    assert data_fingerprint(other) != data_fingerprint(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trials": 0}, "n_trials=0 must be an integer >= 1"),
        ({"trial_epochs": 1.5}, "trial_epochs=1.5"),
        ({"n_jobs": 0}, "n_jobs=0"),
        ({"backend": "spark"}, "backend='spark' is not one of loky, dask"),
        ({"dask_address": "tcp://127.0.0.1:8786"}, "needs backend='dask'"),
        ({"halving_factor": 1}, "halving_factor=1"),
    ],
)
def test_bad_arguments(data: PreparedData, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_search(data, build_space(), **kwargs)


def test_extras_need_a_handler(data: PreparedData) -> None:
    with pytest.raises(ConfigError, match=r"\['augment'\].*extras_handler"):
        run_search(data, build_space({"augment": "none,shift"}), n_trials=1)


def test_data_without_validation_split_is_refused(data: PreparedData) -> None:
    arrays = TrialArrays.from_data(data)
    empty = dataclasses.replace(arrays, X_val=arrays.X_val[:0], y_val=arrays.y_val[:0])
    with pytest.raises(ConfigError, match="needs a validation split"):
        run_search(empty, build_space(), n_trials=1)


def test_unwritable_store_is_a_cache_error(data: PreparedData, tmp_path: Path) -> None:
    (tmp_path / "trials").write_text("a file where the trials folder should be")
    space = build_space({"hidden": 16})
    with pytest.raises(CacheError, match=r"cannot store trial 0 in .*trials"):
        run_search(data, space, n_trials=1, trial_epochs=1, n_jobs=1, cache_dir=tmp_path)


@pytest.mark.slow  # three rounds of real training
def test_halving_continues_promoted_trials_exactly_and_always_promotes_the_recipe(
    data: PreparedData, tmp_path: Path
) -> None:
    # The recipe (trial 0) is made poor on purpose: a tiny learning rate. It must still
    # reach every round; trials whose learning rate diverges must never be promoted.
    base = {"momentum": 0.9, "nesterov": True, "schedule": "cosine", "warmup_epochs": 1}
    reference = {"hidden": 32, "batch_size": 128, "lr": 1e-4}
    space = build_space({"hidden": 32, "batch_size": 128, "lr": "0.05,0.2,1e4"}, {})
    seen = []
    result = run_search(
        data, space, n_trials=6, trial_epochs=4, seed=1, n_jobs=1, halving=True,
        halving_factor=2, cache_dir=tmp_path, base=base, reference=reference,
        on_trial=lambda r, done, total: seen.append((done, total)),
    )  # fmt: skip
    rounds = [[t for t in result.trials if t["rung"] == k] for k in range(3)]
    assert [sorted({t["epochs"] for t in r}) for r in rounds] == [[1], [2], [4]]
    diverged = {t["trial"] for t in rounds[0] if t["status"] == "diverged"}
    assert diverged, "the space should hold a diverging learning rate"
    for later in rounds[1:]:
        assert 0 in {t["trial"] for t in later}  # the recipe reaches every round
        assert not diverged & {t["trial"] for t in later}
        assert all(t["resumed"] == later[0]["epochs"] // 2 for t in later)  # continued
    assert seen[-1][0] == seen[-1][1] == len(result.trials)  # the last count is exact
    # a trial of the last round equals the same trial trained in one go, bit for bit
    # (the same workers, so the same BLAS threads: their count changes the rounding)
    plain = run_search(data, space, n_trials=6, trial_epochs=4, seed=1, n_jobs=1, base=base,
                       reference=reference, halving=False)  # fmt: skip
    whole = {t["trial"]: t for t in plain.trials}
    for last in rounds[2]:
        assert whole[last["trial"]]["val_loss"] == last["val_loss"]
        assert whole[last["trial"]]["val_accuracy"] == last["val_accuracy"]
    assert result.choice["reference"]["trial"] == 0
    assert result.choice["chosen"] == "tuned" and result.best_trial != 0
    assert result.choice["top"]["test_accuracy"] > 0.5  # its checkpoint, on the test split
    assert not (tmp_path / "checkpoints").exists()  # removed when the search ended


def test_checkpoints_are_kept_on_request(data: PreparedData, tmp_path: Path) -> None:
    space = build_space({"hidden": 16, "batch_size": 128, "lr": "0.05,0.1"}, {})
    kept = run_search(data, space, n_trials=2, trial_epochs=1, n_jobs=1, cache_dir=tmp_path / "a",
                      keep_checkpoints=True)  # fmt: skip
    assert len(list((tmp_path / "a" / "checkpoints").glob("*-e1.json"))) == 2
    assert kept.checkpoint is None
    best = run_search(data, space, n_trials=2, trial_epochs=1, n_jobs=1, cache_dir=tmp_path / "b",
                      keep_best=True)  # fmt: skip
    (only,) = (tmp_path / "b" / "checkpoints").glob("*-e1.npz")
    assert best.checkpoint == str(only)
    model, meta = load_model(only)
    assert model.layer_sizes == (784, 16, 10) and meta["checkpoint"]["epoch"] == 1
    assert meta["trial"] == best.best_trial
    assert [r["val_accuracy"] for r in meta["records"]] == best.trials[best.best_trial][
        "val_accuracy"
    ]
