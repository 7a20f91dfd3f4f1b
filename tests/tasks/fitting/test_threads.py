"""BLAS threads of a fit: a fixed count applied inside it, the caller's setting otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from nn.errors import ConfigError
from nn.train import TrainConfig
from tasks.fitting.augment import default_augment, make_augmenter
from tasks.fitting.fit import BLAS_THREADS, fit


def _blas() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def _splits(n: int = 300, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        X_train=rng.standard_normal((n, 784), dtype=np.float32),
        y_train=rng.integers(0, 10, n),
        X_val=None,
        y_val=None,
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="threads="):
        fit(_splits(), [16], 10, TrainConfig(epochs=1), rng=np.random.default_rng(0), threads=bad)


@pytest.mark.parametrize("count", [1, 2])
def test_a_fixed_count_is_the_limit_inside_the_fit(count):
    seen = []
    fit(
        _splits(), [16], 10, TrainConfig(epochs=2, batch_size=64), rng=np.random.default_rng(0),
        callback=lambda record: seen.append(_blas()), threads=count,
    )  # fmt: skip
    assert seen and all(counts and set(counts) == {count} for counts in seen)


def test_without_a_count_the_fit_keeps_the_callers_setting_and_restores_its_own():
    """A search trial limits BLAS to its share of the cores around the fit (threads=None)."""
    before, seen = _blas(), []
    with threadpool_limits(1, user_api="blas"):
        fit(
            _splits(), [16], 10, TrainConfig(epochs=1, batch_size=64),
            rng=np.random.default_rng(0), callback=lambda record: seen.append(_blas()),
        )  # fmt: skip
    assert seen and set(seen[0]) == {1}
    fit(
        _splits(), [16], 10, TrainConfig(epochs=1, batch_size=64), rng=np.random.default_rng(0),
        threads=BLAS_THREADS,
    )  # fmt: skip
    assert _blas() == before


def test_the_default_count_gives_the_same_weights_for_the_same_seed():
    """The promise of a fixed default: run twice, the same seed gives bit-identical weights."""
    models = [
        fit(
            _splits(), [32], 10, TrainConfig(epochs=2, batch_size=32, momentum=0.9),
            rng=np.random.default_rng(5), threads=BLAS_THREADS,
        )[0]
        for _ in range(2)
    ]  # fmt: skip
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_prefetched_augmented_fit_gives_the_sequential_weights(monkeypatch):
    from tasks.fitting import fit as fit_module

    splits = _splits(500, seed=1)
    augment = default_augment("fashion-mnist", "elastic")
    config = TrainConfig(epochs=2, batch_size=64, lr=0.05, momentum=0.9)
    prefetched, models = [], []
    train = fit_module.train

    def spy(*args, **kwargs):
        prefetched.append(kwargs["prefetch"])
        return train(*args, **kwargs)

    monkeypatch.setattr(fit_module, "train", spy)
    for cores in (1, 2):  # one core: no prefetching thread
        monkeypatch.setattr(fit_module, "available_cores", lambda n=cores: n)
        model, _ = fit(
            splits, [32], 10, config, rng=np.random.default_rng(3),
            augment=make_augmenter(augment), threads=1,
        )  # fmt: skip
        models.append(model)
    assert prefetched == [False, True]
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_augmenter_eases_off_over_the_last_epochs_of_the_fit():
    """fit trains the last sixth of ``config.epochs`` on gentler images, as
    ``nn.train.train`` does with the same choice per epoch; so does a resumed fit."""
    from nn.model import MLP
    from nn.train import TrainState, train
    from tasks.fitting.augment import EASE_FACTOR, Augmenter, eased

    splits = _splits(256, seed=2)
    config = TrainConfig(epochs=6, batch_size=64, lr=0.05, momentum=0.9)
    augment = default_augment("mnist", "elastic")

    def trained(**kwargs):
        rng = np.random.default_rng(5)
        model = MLP.create((784, 32, 10), rng=rng)
        with threadpool_limits(1, user_api="blas"):
            train(model, splits.X_train, splits.y_train, config, rng=rng, **kwargs)
        return model

    def fitted(stop_epoch=None):
        rng = np.random.default_rng(5)
        model, state = None, TrainState()
        for stop in (stop_epoch, None) if stop_epoch else (None,):
            model, _ = fit(
                splits, [32], 10, config, rng=rng, augment=make_augmenter(augment),
                threads=1, model=model, state=state, stop_epoch=stop,
            )  # fmt: skip
        return model

    gentle = Augmenter(augment.scaled(EASE_FACTOR))
    eased_run = trained(augment_by_epoch=lambda e: Augmenter(augment) if e <= 5 else gentle)
    full_run = trained(augment=Augmenter(augment))
    for model in (fitted(), fitted(stop_epoch=5), fitted(stop_epoch=3)):
        for a, b in zip(model.parameters(), eased_run.parameters(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert fitted().weights[0].tobytes() != full_run.weights[0].tobytes()
    assert eased(Augmenter(augment), 6)(6).config == gentle.config
