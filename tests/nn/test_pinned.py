"""What a training run can promise, pinned without depending on the CPU's BLAS kernels.

Exact bytes are promised only within one process (same machine, same BLAS, same
threads) for the same computation: two runs with the same seed. BLAS may block its
sums differently on another machine, or for another number of rows, so values are
compared with the readable maths of :mod:`nn.backprop`, or across batch sizes, to a
tolerance instead of recorded digests.
(Resuming from a checkpoint is pinned bit for bit in ``test_checkpoint.py``.)
"""

from __future__ import annotations

import numpy as np

from nn.backprop import sgd_step
from nn.losses import softmax
from nn.model import MLP
from nn.schedules import learning_rate
from nn.train import History, TrainConfig, train

SGD_CONFIG = TrainConfig(
    epochs=2,
    batch_size=48,
    lr=0.1,
    optimizer="sgd",
    momentum=0.9,
    nesterov=True,
    weight_decay=1e-3,
    schedule="cosine",
    warmup_epochs=1,
)


def _history_floats(history: History) -> list[float]:
    return [
        value
        for r in history.records
        for value in (r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.lr)
    ]


def _sgd_run(mnist_test_set) -> tuple[MLP, History]:
    """784-32-10 ReLU on the first 512 real test images in batches of 48 (ten full
    batches and a short one of 32), validated on the next 256."""
    X, y = mnist_test_set
    rng = np.random.default_rng(20240601)
    model = MLP.create((784, 32, 10), rng=rng)
    history = train(
        model, X[:512], y[:512], SGD_CONFIG, rng=rng, X_val=X[512:768], y_val=y[512:768]
    )
    return model, history


def _readable_sgd_run(mnist_test_set) -> MLP:
    """The same run written with :func:`nn.backprop.sgd_step`: the same generator draws
    the weights, then one permutation per epoch; the same rate per epoch."""
    X, y = mnist_test_set
    X, y = X[:512], y[:512]
    c = SGD_CONFIG
    rng = np.random.default_rng(20240601)
    model = MLP.create((784, 32, 10), rng=rng)
    velocities = [np.zeros_like(p) for p in model.parameters()]
    for epoch in range(c.epochs):
        lr = learning_rate(
            c.schedule, epoch, lr=c.lr, epochs=c.epochs, decay=c.decay,
            step_size=c.step_size, warmup_epochs=c.warmup_epochs,
        )  # fmt: skip
        order = rng.permutation(len(y))
        for start in range(0, len(y), c.batch_size):
            rows = order[start : start + c.batch_size]
            sgd_step(
                model.weights, model.biases, model.activation, X[rows], y[rows], lr,
                weight_decay=c.weight_decay, momentum=c.momentum, nesterov=c.nesterov,
                velocities=velocities,
            )  # fmt: skip
    return model


def test_training_follows_the_readable_sgd_step(mnist_test_set):
    """22 steps of the fused step against the readable one. Each step rounds differently
    in float32 (about 1e-7 relative) and training carries the differences on; a hundred
    times that, 1e-5, leaves room for another BLAS (the largest weights are about 0.9).
    Leaving out the weight decay or the Nesterov correction, or a momentum of 0.89 for
    0.9, moves the weights by 1e-2 or more."""
    model, history = _sgd_run(mnist_test_set)
    assert history.records[-1].train_accuracy > 0.5  # it learned something: chance is 0.1
    readable = _readable_sgd_run(mnist_test_set)
    for got, want in zip(model.parameters(), readable.parameters(), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_the_same_seed_gives_the_same_bits_in_one_process(mnist_test_set):
    """SGD (one hidden ReLU layer, validation) and Adam (two tanh layers), each run twice."""
    X, y = mnist_test_set
    first, again = _sgd_run(mnist_test_set), _sgd_run(mnist_test_set)
    adam = TrainConfig(epochs=2, batch_size=48, lr=2e-3, optimizer="adam", weight_decay=1e-4)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        model = MLP.create((784, 24, 16, 10), activation="tanh", init="xavier", rng=rng)
        runs.append((model, train(model, X[:512], y[:512], adam, rng=rng)))
    for (a, ha), (b, hb) in ((first, again), tuple(runs)):
        assert ha.records[-1].train_accuracy > 0.5
        assert _history_floats(ha) == _history_floats(hb)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert pa.tobytes() == pb.tobytes()


def test_inference_does_not_depend_on_the_batch_size_beyond_rounding(mnist_test_set):
    """logits, predict_proba, predict and evaluate on 600 unseen images, in one batch and
    in batches of 128 (four full, one short). BLAS may pick another kernel for another
    number of rows, so the logits agree to float32 rounding (sums of 784 products), not
    bit for bit; a prediction could change only where two logits tie to within that."""
    model, _ = _sgd_run(mnist_test_set)
    X, y = mnist_test_set
    X, y = X[1000:1600], y[1000:1600]
    logits = model.logits(X)
    pred = model.predict(X)
    loss, acc = model.evaluate(X, y)
    assert 0.5 < acc < 1.0 and 0.0 < loss < 2.0
    np.testing.assert_array_equal(pred, logits.argmax(axis=1))
    np.testing.assert_allclose(model.logits(X, batch_size=128), logits, rtol=1e-5, atol=1e-5)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba, softmax(logits.astype(np.float64)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.predict_proba(X, batch_size=128), proba, atol=1e-6)
    np.testing.assert_array_equal(model.predict(X, batch_size=128), pred)
    loss_128, acc_128 = model.evaluate(X, y, batch_size=128)
    assert acc_128 == acc and abs(loss_128 - loss) < 1e-6
