"""The BLAS thread policy: fixed counts applied inside the fit, ``auto`` keeping the faster."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from nn.errors import ConfigError
from nn.train import TrainConfig
from tasks.fitting import threads as threads_module
from tasks.fitting.augment import default_augment, make_augmenter
from tasks.fitting.fit import fit
from tasks.fitting.threads import AUTO, BlasPacer, blas_threads, check_threads


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


class FakeSteps:
    """A clock whose steps take ``cost[threads]`` seconds, and the count the pacer set."""

    def __init__(self, cost: dict[int, float]) -> None:
        self.cost, self.now, self.threads, self.calls = cost, 0.0, None, []

    def set_threads(self, count: int) -> None:
        self.threads = count
        self.calls.append(count)

    def run(self, pacer: BlasPacer, steps: int) -> list[int]:
        used = []
        for _ in range(steps):
            pacer()
            used.append(self.threads)
            cost = self.cost[self.threads]
            self.now += cost() if callable(cost) else cost
        return used


def _pacer(fake: FakeSteps, **kwargs) -> BlasPacer:
    kwargs.setdefault("others", lambda threads: 0.0)  # an idle machine
    return BlasPacer(2, fake.set_threads, clock=lambda: fake.now, **kwargs)


def test_pacer_keeps_two_threads_when_they_are_faster():
    fake = FakeSteps({1: 0.010, 2: 0.006})
    pacer = _pacer(fake, window=8, hold=64)
    used = fake.run(pacer, 2000)
    assert pacer.seconds == {1: pytest.approx(0.010), 2: pytest.approx(0.006)}
    assert used.count(2) > 0.9 * len(used)  # after timing one thread once, then short probes
    assert used[-1] == 2


def test_pacer_falls_back_to_one_thread_under_load_and_probes_cheaply():
    fake = FakeSteps({1: 0.010, 2: 0.100})  # two threads ten times slower: a busy core
    pacer = _pacer(fake, window=8, hold=64, early=3)
    used = fake.run(pacer, 5000)
    assert used[-1] == 1
    slow = used.count(2)
    # every probe is cut after skip + early steps; the holds double, so few probes
    assert 0 < slow <= 4 * 12, slow
    assert fake.now < 1.1 * 5000 * 0.010 + 0.5


def test_pacer_follows_a_change_of_load():
    fake = FakeSteps({1: 0.010, 2: 0.100})
    pacer = _pacer(fake, window=8, hold=64, max_hold=512)
    fake.run(pacer, 1000)
    assert fake.threads == 1
    fake.cost[2] = 0.005  # the other process ended
    used = fake.run(pacer, 2000)
    assert used[-1] == 2 and used.count(2) > 1000


def test_pacer_leaves_two_threads_at_once_when_a_core_is_taken_during_a_hold():
    fake = FakeSteps({1: 0.010, 2: 0.006})
    pacer = _pacer(fake, window=8, hold=64, max_hold=8192, early=3)
    fake.run(pacer, 3000)  # idle: the holds of two threads have grown long
    assert fake.threads == 2
    fake.cost[2] = 0.100  # another process takes a core in the middle of a hold
    used = fake.run(pacer, 2000)
    assert used[-1] == 1
    first_one = used.index(1)
    assert first_one <= 3, first_one  # early steps, not the rest of the hold
    assert used.count(2) <= first_one + 4 * 12, used.count(2)  # then only cut probes


def test_pacer_judges_by_the_mean_step_when_two_threads_stall_now_and_then():
    # Under contention most steps of two threads are fast and some many times slower
    # (a thread waiting for its core): the median says two threads, the mean says one.
    stalls = itertools.cycle([0.004] * 7 + [0.040] * 3)  # mean 0.0148 against 0.010
    fake = FakeSteps({1: 0.010, 2: lambda: next(stalls)})
    pacer = _pacer(fake, window=10, hold=64, max_hold=512)
    used = fake.run(pacer, 3000)
    assert used[-1] == 1
    assert used.count(2) < 0.2 * len(used), used.count(2)
    assert fake.now < 1.15 * 3000 * 0.010


def test_pacer_does_not_probe_while_other_processes_keep_a_core_busy():
    fake = FakeSteps({1: 0.010, 2: 0.100})
    load = {"others": 1.0}
    pacer = _pacer(fake, window=8, hold=64, max_hold=256, others=lambda t: load["others"])
    used = fake.run(pacer, 2000)
    assert set(used) == {1} and pacer.seconds == {1: pytest.approx(0.010)}
    fake.cost[2] = 0.005  # the other process ended: the next probe finds two threads faster
    load["others"] = 0.0
    used = fake.run(pacer, 2000)
    assert used[-1] == 2 and used.count(2) > 1000


def test_others_load_is_the_load_average_less_our_threads(monkeypatch):
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (2.5, 0.0, 0.0))
    assert threads_module.others_load(1) == 1.5
    assert threads_module.others_load(4) == 0.0


def test_pacer_needs_a_choice():
    with pytest.raises(ConfigError, match="high=1"):
        BlasPacer(1, lambda n: None)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="threads="):
        check_threads(bad)


@pytest.mark.parametrize("count", [1, 2])
def test_a_fixed_count_is_the_limit_inside_the_fit(count):
    seen = []
    fit(
        _splits(), [16], 10, TrainConfig(epochs=2, batch_size=64), rng=np.random.default_rng(0),
        callback=lambda record: seen.append(_blas()), threads=count,
    )  # fmt: skip
    assert seen and all(counts and set(counts) == {count} for counts in seen)


def test_auto_limits_blas_to_the_cores_and_restores_it(monkeypatch):
    before = _blas()
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    with blas_threads(AUTO) as pacer:
        assert isinstance(pacer, BlasPacer) and pacer.high == 2
        assert set(_blas()) == {1}  # auto starts by timing one thread
    with blas_threads(AUTO, prefetch=True) as pacer:  # one core left for the prefetching
        assert pacer is None and set(_blas()) == {1}
    with blas_threads(None) as pacer:
        assert pacer is None and _blas() == before
    assert _blas() == before


def test_auto_in_the_fit_uses_at_most_the_cores(monkeypatch):
    monkeypatch.setattr(threads_module, "available_cores", lambda: 2)
    seen = []
    fit(
        _splits(), [16], 10, TrainConfig(epochs=3, batch_size=16), rng=np.random.default_rng(0),
        callback=lambda record: seen.append(_blas()), threads=AUTO,
    )  # fmt: skip
    assert all(set(counts) <= {1, 2} for counts in seen)


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
