"""The MLP: construction, initialisers, inference and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from nn.errors import ConfigError, InputError
from nn.losses import softmax
from nn.model import MLP


def test_default_network_shapes_and_dtypes():
    model = MLP.create(rng=np.random.default_rng(0))
    assert model.layer_sizes == (784, 300, 10)
    assert model.activation == "relu" and model.dtype == np.float32
    assert [w.shape for w in model.weights] == [(784, 300), (300, 10)]
    assert [b.shape for b in model.biases] == [(300,), (10,)]
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert all(np.count_nonzero(b) == 0 for b in model.biases)


def test_any_number_of_hidden_layers():
    model = MLP.create((20, 16, 12, 8, 3), activation="tanh", rng=np.random.default_rng(0))
    assert model.layer_sizes == (20, 16, 12, 8, 3)
    X = np.random.default_rng(1).normal(size=(7, 20)).astype(np.float32)
    assert model.predict_proba(X).shape == (7, 3)
    assert MLP.create((5, 2), rng=np.random.default_rng(0)).layer_sizes == (5, 2)


@pytest.mark.parametrize(
    ("init", "check"),
    [
        ("he", lambda w, n_in, n_out: abs(w.std() - np.sqrt(2 / n_in)) < 0.02 * np.sqrt(2 / n_in)),
        (
            "xavier",
            lambda w, n_in, n_out: (
                np.abs(w).max() <= np.sqrt(6 / (n_in + n_out))
                and abs(w.std() - np.sqrt(2 / (n_in + n_out))) < 0.02 * np.sqrt(2 / (n_in + n_out))
            ),
        ),
    ],
)
def test_initialisers_by_name(init, check):
    model = MLP.create((784, 300, 10), init=init, rng=np.random.default_rng(0))
    w = model.weights[0]
    assert w.dtype == np.float32
    assert abs(float(w.mean())) < 1e-3
    assert check(w, 784, 300)


def test_same_seed_same_initial_weights():
    a = MLP.create(rng=np.random.default_rng(5))
    b = MLP.create(rng=np.random.default_rng(5))
    c = MLP.create(rng=np.random.default_rng(6))
    assert a.weights[0].tobytes() == b.weights[0].tobytes() != c.weights[0].tobytes()


def test_predict_proba_predict_and_evaluate(mnist_test_set):
    X, y = mnist_test_set
    X, y = X[:5000], y[:5000]
    rng = np.random.default_rng(0)
    model = MLP.create((784, 64, 10), rng=rng)
    for b in model.biases:
        b[:] = rng.normal(0, 0.1, size=b.shape)
    proba = model.predict_proba(X, batch_size=999)
    assert proba.shape == (5000, 10) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # reference: one unbatched float64 forward pass written out by hand
    W0, W1 = (w.astype(np.float64) for w in model.weights)
    b0, b1 = (b.astype(np.float64) for b in model.biases)
    logits = np.maximum(X @ W0 + b0, 0) @ W1 + b1
    ref = softmax(logits)
    np.testing.assert_allclose(proba, ref, rtol=1e-4, atol=1e-6)
    pred = model.predict(X, batch_size=777)
    assert pred.dtype == np.int64 and pred.shape == (5000,)
    assert np.mean(pred == ref.argmax(axis=1)) > 0.999
    loss, acc = model.evaluate(X, y, batch_size=1234)
    assert loss == pytest.approx(-np.mean(np.log(ref[np.arange(5000), y])), rel=1e-5)
    assert acc == np.mean(pred == y)


def test_copy_and_set_parameters():
    model = MLP.create((6, 4, 3), rng=np.random.default_rng(0))
    twin = model.copy()
    twin.weights[0] += 1
    assert not np.array_equal(twin.weights[0], model.weights[0])
    model.set_parameters(twin.parameters())
    np.testing.assert_array_equal(twin.weights[0], model.weights[0])
    with pytest.raises(InputError, match="expected 4 parameter arrays"):
        model.set_parameters(model.parameters()[:2])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"layer_sizes": (784,)}, "layer_sizes"),
        ({"layer_sizes": (784, 0, 10)}, "layer_sizes"),
        ({"layer_sizes": (784, 30.5, 10)}, "layer_sizes"),
        ({"activation": "swish"}, "activation"),
        ({"init": "orthogonal"}, "init"),
        ({"dtype": np.float16}, "dtype"),
    ],
)
def test_create_rejects_bad_settings_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=rf"^{field}="):
        MLP.create(**kwargs, rng=np.random.default_rng(0))


def test_create_needs_a_generator():
    with pytest.raises(ConfigError, match="rng"):
        MLP.create(rng=np.random.RandomState(0))  # type: ignore[arg-type]


def test_constructor_checks_shapes_and_dtypes():
    w = [np.zeros((4, 3), np.float32), np.zeros((3, 2), np.float32)]
    b = [np.zeros(3, np.float32), np.zeros(2, np.float32)]
    with pytest.raises(InputError, match="layer 1"):
        MLP([w[0], np.zeros((5, 2), np.float32)], b)
    with pytest.raises(InputError, match="layer 0"):
        MLP(w, [np.zeros(4, np.float32), b[1]])
    with pytest.raises(InputError, match="dtype"):
        MLP([w[0], w[1].astype(np.float64)], b)
    with pytest.raises(InputError, match="float32 or float64"):
        MLP([x.astype(np.int32) for x in w], b)


def test_inference_rejects_bad_inputs():
    model = MLP.create((6, 4, 3), rng=np.random.default_rng(0))
    with pytest.raises(InputError, match=r"X must have shape \(n, 6\)"):
        model.predict(np.zeros((2, 5), np.float32))
    with pytest.raises(InputError, match=r"X must have shape"):
        model.predict_proba(np.zeros(6, np.float32))
    with pytest.raises(InputError, match="labels outside"):
        model.evaluate(np.zeros((2, 6), np.float32), np.array([0, 3]))
    with pytest.raises(InputError, match="empty"):
        model.evaluate(np.zeros((0, 6), np.float32), np.zeros(0, np.int64))
    for bad in (0, -1, 2.5):
        with pytest.raises(InputError, match=rf"^batch_size={bad}"):
            model.predict(np.zeros((2, 6), np.float32), batch_size=bad)
    assert model.predict(np.zeros((0, 6), np.float32)).shape == (0,)
    assert model.logits(np.zeros((0, 6), np.float32)).shape == (0, 3)
