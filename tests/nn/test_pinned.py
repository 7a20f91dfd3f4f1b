"""Pinned behaviour: small fixed-seed runs whose results must stay bit-identical.

These tests guard refactorings of the forward pass, the loss and the backward pass:
a change that only moves code keeps every float operation and its order, so the
trained weights, the recorded losses and the inference outputs keep their exact
bytes. Each test hashes the bytes (SHA-256) and compares with a digest recorded
before the refactoring.

The digests hold for the pinned numpy (``constraints.txt``) and its bundled
OpenBLAS on x86-64; another numpy or BLAS may round differently, so the tests
skip on another numpy version. A deliberate change of the arithmetic (another
summation order, a fused operation) changes the digests: check the tolerance-based
tests (``test_step``, ``test_gradients``, ``test_model``) first, then record the
new digests and say why in the commit.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nn.model import MLP
from nn.train import History, TrainConfig, train

NUMPY_VERSION = "2.4.6"  # the version the digests below were recorded with

pytestmark = pytest.mark.skipif(
    np.__version__ != NUMPY_VERSION,
    reason=f"digests recorded with numpy {NUMPY_VERSION}, running {np.__version__}",
)


def _digest(*parts: np.ndarray | float) -> str:
    """SHA-256 of the bytes of arrays (dtype and shape included) and floats (exact hex)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(f"{p.dtype.str}{p.shape}".encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(float(p).hex().encode())
    return h.hexdigest()


def _history_floats(history: History) -> list[float]:
    floats: list[float] = []
    for r in history.records:
        floats += [r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.lr]
    return floats


def _sgd_run(mnist_test_set) -> tuple[MLP, History]:
    """784-32-10 ReLU, SGD with Nesterov momentum, weight decay, warm-up then cosine.

    The first 512 real test images in batches of 48 (ten full batches and a short one
    of 32, so both row counts of the step are exercised), validated on the next 256.
    """
    X, y = mnist_test_set
    rng = np.random.default_rng(20240601)
    model = MLP.create((784, 32, 10), rng=rng)
    config = TrainConfig(
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
    history = train(model, X[:512], y[:512], config, rng=rng, X_val=X[512:768], y_val=y[512:768])
    return model, history


def test_sgd_training_is_bit_identical_to_the_recorded_run(mnist_test_set):
    model, history = _sgd_run(mnist_test_set)
    assert history.records[-1].train_accuracy > 0.5  # it learned something: chance is 0.1
    assert _digest(*model.parameters()) == (
        "2351d0ea5f9fb2a32818d982ee73b91c619022974a168067a56ee1e9a33ac6ff"
    )
    assert _digest(*_history_floats(history)) == (
        "5a9392bd58f2e7c848bc02e7702120a6e7142621c018c47d86f04ce0ed4a52ee"
    )


def test_adam_training_with_two_tanh_layers_is_bit_identical(mnist_test_set):
    """784-24-16-10 tanh with Adam: the unscaled gradient path and a deeper backward pass."""
    X, y = mnist_test_set
    rng = np.random.default_rng(7)
    model = MLP.create((784, 24, 16, 10), activation="tanh", init="xavier", rng=rng)
    config = TrainConfig(epochs=2, batch_size=48, lr=2e-3, optimizer="adam", weight_decay=1e-4)
    history = train(model, X[:512], y[:512], config, rng=rng)
    assert history.records[-1].train_accuracy > 0.5
    assert _digest(*model.parameters()) == (
        "34493b08e98744c19d5e1a3f35783e36674173c9756e320039201331fdb338ff"
    )
    assert _digest(*(r.train_loss for r in history.records)) == (
        "5c6c859dc5dc84f780e89e65e0fb5bcfe7dca44a6efc09174ae5728753c4691f"
    )


def test_inference_of_the_trained_network_is_bit_identical(mnist_test_set):
    """logits, predict_proba, predict and evaluate on 600 unseen images, in one batch and in
    batches of 128 (four full, one short): the same bytes as recorded, and the same bytes
    whatever the batch size."""
    model, _ = _sgd_run(mnist_test_set)
    X, y = mnist_test_set
    X, y = X[1000:1600], y[1000:1600]
    logits = model.logits(X)
    proba = model.predict_proba(X)
    pred = model.predict(X)
    loss, acc = model.evaluate(X, y)
    assert 0.5 < acc < 1.0 and 0.0 < loss < 2.0
    np.testing.assert_array_equal(pred, logits.argmax(axis=1))
    assert _digest(logits) == "6384e2ec318940c38c4289b2e878c3f9a8ddfce86ff957044cf410d8f53a7809"
    assert _digest(proba) == "018e9ee5827de1fdcd4ab89502f464f2d78218abe76fad14d4873004393057e6"
    assert _digest(pred) == "9ed7f105e1c479c0f132a4d0a8a4b3e78ad35a1345877156573e210401d480d0"
    assert _digest(loss, acc) == (
        "43956e9c845e4a85bf0ed945651678b8f55a096446251d99f872cfda7ff58b41"
    )
    assert _digest(model.predict_proba(X, batch_size=128)) == _digest(proba)
    assert _digest(model.predict(X, batch_size=128)) == _digest(pred)
    # the row losses are float32 within about 17 binades of each other, so their float64
    # sum is exact in any order: batching cannot change the mean loss here
    assert model.evaluate(X, y, batch_size=128) == (loss, acc)
