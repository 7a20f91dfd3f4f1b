"""Training on small real MNIST samples: overfitting, determinism, early stopping, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nn.backprop import loss_and_gradients
from nn.errors import ConfigError, InputError, NonFiniteError
from nn.model import MLP
from nn.optim import count_subnormals
from nn.train import EpochRecord, History, TrainConfig, TrainState, train


def _fit(X, y, seed: int, config: TrainConfig, **kwargs) -> tuple[MLP, History]:
    rng = np.random.default_rng(seed)
    model = MLP.create(rng=rng)
    return model, train(model, X, y, config, rng=rng, **kwargs)


def test_overfits_100_real_images_to_full_training_accuracy(mnist_sample, capsys):
    X, y = mnist_sample
    model, history = _fit(X, y, 0, TrainConfig(epochs=25, batch_size=20, lr=0.1))
    loss, acc = model.evaluate(X, y)
    assert acc == 1.0
    assert loss < 0.05
    assert history.records[-1].train_accuracy == 1.0
    assert history.records[0].train_loss > 5 * history.records[-1].train_loss
    assert capsys.readouterr() == ("", "")  # training never prints


def test_history_records_and_callback(mnist_test_set):
    X, y = mnist_test_set
    seen: list[EpochRecord] = []
    cfg = TrainConfig(epochs=3, batch_size=50, schedule="step", decay=0.5, step_size=1)
    _, history = _fit(
        X[:300], y[:300], 1, cfg, X_val=X[300:400], y_val=y[300:400], callback=seen.append
    )
    assert seen == history.records
    assert [r.epoch for r in history.records] == [1, 2, 3]
    assert [r.lr for r in history.records] == [0.1, 0.05, 0.025]
    for r in history.records:
        assert 0 <= r.train_accuracy <= 1 and 0 <= r.val_accuracy <= 1
        assert math.isfinite(r.train_loss) and math.isfinite(r.val_loss) and r.seconds > 0
        assert set(r.to_dict()) == {
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "lr",
            "seconds",
        }
    val_losses = [r.val_loss for r in history.records]
    assert history.best_epoch == 1 + int(np.argmin(val_losses))
    assert not history.stopped_early
    assert history.to_dicts()[0]["epoch"] == 1

    _, no_val = _fit(X[:300], y[:300], 1, TrainConfig(epochs=2, batch_size=50))
    assert no_val.records[0].val_loss is None and no_val.records[0].val_accuracy is None
    assert no_val.best_epoch == 2


def test_same_seed_gives_bit_identical_weights(mnist_test_set):
    X, y = mnist_test_set
    X, y = X[:400], y[:400]
    cfg = TrainConfig(epochs=2, batch_size=32, nesterov=True, weight_decay=1e-4)

    def noise(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return batch + rng.normal(0.0, 0.01, size=batch.shape).astype(np.float32)

    runs = [_fit(X, y, seed, cfg, augment=noise)[0] for seed in (7, 7, 8)]
    for a, b in zip(runs[0].parameters(), runs[1].parameters(), strict=True):
        assert a.dtype == np.float32
        assert a.tobytes() == b.tobytes()
    assert runs[0].weights[0].tobytes() != runs[2].weights[0].tobytes()


def test_early_stopping_restores_the_best_weights(mnist_test_set):
    X, y = mnist_test_set
    Xtr, ytr, Xv, yv = X[:60], y[:60], X[1000:1300], y[1000:1300]
    cfg = TrainConfig(epochs=60, batch_size=10, lr=0.2, patience=3)
    model, history = _fit(Xtr, ytr, 0, cfg, X_val=Xv, y_val=yv)
    assert history.stopped_early
    assert len(history.records) < 60
    assert len(history.records) == history.best_epoch + 3
    best = history.records[history.best_epoch - 1]
    assert best.val_loss == min(r.val_loss for r in history.records)
    assert history.records[-1].val_loss > best.val_loss
    loss, acc = model.evaluate(Xv, yv)
    assert loss == pytest.approx(best.val_loss, rel=1e-6)
    assert acc == best.val_accuracy


def test_absurd_learning_rate_raises_non_finite_error_with_epoch(mnist_sample):
    X, y = mnist_sample
    with pytest.raises(NonFiniteError, match=r"epoch 1") as info:
        _fit(X, y, 0, TrainConfig(epochs=3, batch_size=20, lr=1e6))
    assert info.value.epoch == 1


def test_weights_hold_no_subnormals_after_training(mnist_sample):
    X, y = mnist_sample
    rng = np.random.default_rng(0)
    model = MLP.create(rng=rng)
    model.weights[0][:5] = np.float32(1e-39)  # planted subnormals: flushed after each epoch
    train(model, X, y, TrainConfig(epochs=1, batch_size=50), rng=rng)
    assert all(count_subnormals(p) == 0 for p in model.parameters())


def test_all_optimizers_and_schedules_train(mnist_test_set):
    X, y = mnist_test_set
    for cfg in (
        TrainConfig(epochs=4, batch_size=25, optimizer="adam", lr=1e-3, schedule="cosine"),
        TrainConfig(epochs=4, batch_size=25, momentum=0.0, schedule="exponential", decay=0.9),
    ):
        model, history = _fit(X[:500], y[:500], 0, cfg)
        assert history.records[-1].train_loss < history.records[0].train_loss
        assert model.evaluate(X[:500], y[:500])[1] > 0.9


def test_bad_inputs_name_the_parameter(mnist_sample):
    X, y = mnist_sample
    rng = np.random.default_rng(0)
    model = MLP.create(rng=rng)
    cfg = TrainConfig(epochs=1)
    with pytest.raises(InputError, match=r"X must have shape \(n, 784\)"):
        train(model, X[:, :700], y, cfg, rng=rng)
    with pytest.raises(InputError, match=r"y must be an integer array of shape \(100,\)"):
        train(model, X, y[:50], cfg, rng=rng)
    with pytest.raises(InputError, match="y holds labels outside"):
        train(model, X, y + 5, cfg, rng=rng)
    with pytest.raises(InputError, match="X_val"):
        train(model, X, y, cfg, rng=rng, X_val=X[:, :5], y_val=y)
    with pytest.raises(InputError, match="both X_val and y_val"):
        train(model, X, y, cfg, rng=rng, X_val=X)
    with pytest.raises(ConfigError, match="patience"):
        train(model, X, y, TrainConfig(patience=2), rng=rng)
    with pytest.raises(ConfigError, match="rng"):
        train(model, X, y, cfg, rng=np.random.RandomState(0))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="augment"):
        train(model, X, y, cfg, rng=rng, augment=lambda b, r: b[:, :10])


def test_one_full_batch_step_with_weight_decay_matches_the_gradient(mnist_sample):
    X, y = mnist_sample
    rng = np.random.default_rng(0)
    model = MLP.create((784, 20, 10), rng=rng)
    before = model.copy()
    cfg = TrainConfig(epochs=1, batch_size=100, lr=0.5, momentum=0.0, weight_decay=0.01)
    train(model, X, y, cfg, rng=rng)
    _, gw, gb = loss_and_gradients(before.weights, before.biases, before.activation, X, y, 0.01)
    expected = [
        p - np.float32(0.5) * g
        for p, g in zip(before.parameters(), [gw[0], gb[0], gw[1], gb[1]], strict=True)
    ]
    for got, want in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(model.weights[0], before.weights[0])


def test_augment_by_epoch_chooses_each_epochs_augmentation(mnist_test_set):
    X, y = mnist_test_set
    X, y = X[:200], y[:200]
    cfg = TrainConfig(epochs=4, batch_size=50)
    asked: list[int] = []
    seen: list[str] = []

    def marker(name: str):
        def augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            seen.append(name)
            return batch

        return augment

    def by_epoch(epoch: int):
        asked.append(epoch)
        return None if epoch == 1 else marker("late" if epoch > 2 else "early")

    _fit(X, y, 0, cfg, augment_by_epoch=by_epoch)
    assert asked == [1, 2, 3, 4]
    assert seen == ["early"] * 4 + ["late"] * 8  # 4 minibatches an epoch, none in epoch 1

    # the same choices in one run or stopped and resumed: the hook gets absolute epochs
    rng = np.random.default_rng(0)
    model, state, asked[:] = MLP.create(rng=rng), TrainState(), []
    train(model, X, y, cfg, rng=rng, augment_by_epoch=by_epoch, state=state, stop_epoch=2)
    train(model, X, y, cfg, rng=rng, augment_by_epoch=by_epoch, state=state)
    assert asked == [1, 2, 3, 4]


def test_augment_and_augment_by_epoch_together_are_refused(mnist_sample):
    X, y = mnist_sample
    with pytest.raises(ConfigError, match="augment or augment_by_epoch"):
        _fit(
            X, y, 0, TrainConfig(epochs=1), augment=lambda b, r: b, augment_by_epoch=lambda e: None
        )
