"""Checkpoints: k epochs + resume m epochs is bit for bit k + m epochs in one go."""

from __future__ import annotations

import numpy as np
import pytest

from nn.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint, state_path
from nn.errors import ConfigError, ModelFileError
from nn.model import MLP
from nn.optim import make_optimizer
from nn.train import TrainConfig, TrainState, train


def _augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise drawn from the training generator: a resumed run must continue its stream."""
    return batch + rng.normal(0.0, 0.05, batch.shape).astype(batch.dtype)


def _optimizer(config: TrainConfig):
    return make_optimizer(config.optimizer, momentum=config.momentum, nesterov=config.nesterov)


CONFIGS = [
    TrainConfig(
        epochs=5, batch_size=32, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3,
        schedule="cosine", warmup_epochs=1,
    ),
    TrainConfig(epochs=5, batch_size=50, lr=1e-3, optimizer="adam", schedule="step", step_size=2),
]  # fmt: skip


@pytest.mark.parametrize("prefetch", [False, True], ids=["inline", "prefetched"])
@pytest.mark.parametrize("config", CONFIGS, ids=["nesterov-cosine-warmup", "adam-step"])
def test_resume_from_a_checkpoint_is_bit_identical(config, prefetch, mnist_test_set, tmp_path):
    """Also with the augmentation drawn one minibatch ahead (a background thread)."""
    X, y = mnist_test_set
    X, y, X_val, y_val = X[:500], y[:500], X[500:700], y[500:700]
    data = {"X_val": X_val, "y_val": y_val, "augment": _augment, "prefetch": prefetch}

    rng = np.random.default_rng(7)
    whole = MLP.create((784, 30, 10), rng=rng)
    full = train(whole, X, y, config, rng=rng, **data)

    rng = np.random.default_rng(7)
    part = MLP.create((784, 30, 10), rng=rng)
    state = TrainState()
    first = train(part, X, y, config, rng=rng, state=state, stop_epoch=2, **data)
    assert [r.epoch for r in first.records] == [1, 2] and state.epoch == 2
    path = tmp_path / "trial.npz"
    save_checkpoint(path, part, state, rng, {"trial": 3})
    rng.random(1000)  # the live generator moves on; the checkpoint must not
    part.weights[0][:] = 0.0

    model, resumed, rng2, meta = load_checkpoint(path, _optimizer(config))
    assert meta["trial"] == 3 and resumed.epoch == 2
    rest = train(model, X, y, config, rng=rng2, state=resumed, **data)
    assert [r.epoch for r in rest.records] == [3, 4, 5]
    for a, b in zip(whole.parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(full.records[2:], rest.records, strict=True):
        assert (a.lr, a.train_loss, a.val_loss) == (b.lr, b.train_loss, b.val_loss)
    assert full.records[1].lr != full.records[2].lr  # the schedule really moves


def test_a_kill_between_writes_is_detected(mnist_sample, tmp_path):
    X, y = mnist_sample
    config = TrainConfig(epochs=2, batch_size=20, momentum=0.9)
    rng = np.random.default_rng(0)
    model = MLP.create((784, 10, 10), rng=rng)
    state = TrainState()
    train(model, X, y, config, rng=rng, state=state, stop_epoch=1)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, state, rng)
    first = state_path(path).read_bytes()
    train(model, X, y, config, rng=rng, state=state)
    save_checkpoint(path, model, state, rng)
    state_path(path).write_bytes(first)  # the new state file with the old weights/JSON
    with pytest.raises(ModelFileError, match=r"state\.npz: SHA-256"):
        load_checkpoint(path, _optimizer(config))
    with pytest.raises(ModelFileError, match="optimizer 'sgd'"):
        load_checkpoint(path, make_optimizer("adam"))
    remove_checkpoint(path)
    assert list(tmp_path.iterdir()) == []


def test_stop_epoch_and_resume_are_checked(mnist_sample):
    X, y = mnist_sample
    rng = np.random.default_rng(0)
    model = MLP.create((784, 10, 10), rng=rng)
    with pytest.raises(ConfigError, match="stop_epoch=4"):
        train(model, X, y, TrainConfig(epochs=3), rng=rng, stop_epoch=4)
    with pytest.raises(ConfigError, match="patience=1 cannot resume"):
        train(
            model, X, y, TrainConfig(epochs=3, patience=1), rng=rng, X_val=X, y_val=y,
            state=TrainState(epoch=1, optimizer=None),
        )  # fmt: skip
    with pytest.raises(ConfigError, match="before the optimizer"):
        save_checkpoint("x.npz", model, TrainState(), rng)
