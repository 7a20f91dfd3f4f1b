"""Test metrics: hand-computed small cases, scikit-learn equivalence on real MNIST, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tasks.data.idx import read_idx
from tasks.scoring.metrics import (
    FASHION_MNIST_CLASSES,
    EvaluationError,
    class_names,
    confusion_counts,
    evaluation_metrics,
    select_misclassified,
)


@pytest.fixture(scope="module")
def centroid_predictions(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real MNIST test images, labels and nearest-centroid softmax probabilities.

    Centroids come from the first 1000 images; predictions are for the next 2000,
    a realistic, imperfect classifier (about 80% accurate).
    """
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:3000].astype(np.float32) / 255
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:3000].astype(np.int64)
    flat = images.reshape(len(images), -1)
    centroids = np.stack([flat[:1000][labels[:1000] == c].mean(axis=0) for c in range(10)])
    test = flat[1000:]
    d2 = (test**2).sum(1)[:, None] - 2 * test @ centroids.T + (centroids**2).sum(1)[None, :]
    z = -d2 / 8.0
    z -= z.max(axis=1, keepdims=True)
    proba = np.exp(z)
    proba /= proba.sum(axis=1, keepdims=True)
    return images[1000:], labels[1000:], proba.astype(np.float32)


def test_hand_computed_example() -> None:
    y = np.array([0, 1, 2, 2])
    proba = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], dtype=np.float32
    )
    m = evaluation_metrics(y, proba, ["a", "b", "c"])
    # predictions 0, 1, 1, 2: three of four right
    assert m["test_accuracy"] == 0.75
    expected_loss = -(math.log(0.7) + math.log(0.6) + math.log(0.3) + math.log(0.8)) / 4
    assert m["test_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    a, b, c = m["per_class"]
    assert (a["class"], a["precision"], a["recall"], a["f1"], a["support"]) == ("a", 1, 1, 1, 1)
    # b: predicted twice, once right; one true sample, found
    assert (b["precision"], b["recall"], b["support"]) == (0.5, 1.0, 1)
    assert b["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    # c: predicted once, right; two true samples, one found
    assert (c["precision"], c["recall"], c["support"]) == (1.0, 0.5, 2)
    assert c["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m["n_test"] == 4
    assert m["class_names"] == ["a", "b", "c"]


def test_undefined_scores_are_zero() -> None:
    # class 1 never predicted (precision 0/0), class 2 absent (recall 0/0)
    y = np.array([0, 1])
    proba = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1]])
    m = evaluation_metrics(y, proba, ["0", "1", "2"])
    assert [c["precision"] for c in m["per_class"]] == [0.5, 0.0, 0.0]
    assert [c["recall"] for c in m["per_class"]] == [1.0, 0.0, 0.0]
    assert [c["support"] for c in m["per_class"]] == [1, 1, 0]


def test_zero_probability_is_floored_not_infinite() -> None:
    m = evaluation_metrics(np.array([1]), np.array([[1.0, 0.0]]), ["x", "y"])
    assert m["test_loss"] == pytest.approx(-math.log(1e-12))


def test_exact_loss_given_by_the_caller() -> None:
    proba = np.array([[1.0, 0.0], [0.25, 0.75]])
    m = evaluation_metrics(np.array([1, 1]), proba, ["x", "y"], test_loss=40.0)
    assert m["test_loss"] == 40.0 and m["test_accuracy"] == 0.5
    with pytest.raises(EvaluationError, match="test_loss must be finite"):
        evaluation_metrics(np.array([1, 1]), proba, ["x", "y"], test_loss=float("nan"))


def test_matches_scikit_learn_on_real_mnist(centroid_predictions) -> None:
    from sklearn import metrics as skm  # here: a test worker that runs no such test skips it

    _, y, proba = centroid_predictions
    names = class_names("mnist", 10)
    m = evaluation_metrics(y, proba, names)
    y_pred = proba.argmax(axis=1)
    assert 0.6 < m["test_accuracy"] < 0.95  # a real, imperfect classifier
    assert m["test_accuracy"] == pytest.approx(skm.accuracy_score(y, y_pred), abs=1e-12)
    assert m["test_loss"] == pytest.approx(skm.log_loss(y, proba, labels=range(10)), rel=1e-5)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, y_pred, labels=range(10)).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y, y_pred, labels=range(10), zero_division=0)
    np.testing.assert_allclose([c["precision"] for c in m["per_class"]], p, atol=1e-12)
    np.testing.assert_allclose([c["recall"] for c in m["per_class"]], r, atol=1e-12)
    np.testing.assert_allclose([c["f1"] for c in m["per_class"]], f, atol=1e-12)
    assert [c["support"] for c in m["per_class"]] == s.tolist()
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, y_pred, average="macro"), abs=1e-12)
    json.dumps(m)  # plain JSON types only


def test_confusion_counts_matches_scikit_learn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = skm.confusion_matrix(y_true, y_pred, labels=range(7))
    np.testing.assert_array_equal(confusion_counts(y_true, y_pred, 7), expected)


def test_class_names() -> None:
    assert class_names("mnist", 10) == [str(i) for i in range(10)]
    assert class_names("Fashion_MNIST", 10) == FASHION_MNIST_CLASSES
    assert class_names("fashion-mnist", 10)[0] == "T-shirt/top"
    assert class_names("idx", 3) == ["0", "1", "2"]
    with pytest.raises(EvaluationError, match="n_classes=5"):
        class_names("mnist", 5)
    with pytest.raises(EvaluationError, match="n_classes"):
        class_names("idx", 1)


@pytest.mark.parametrize(
    ("y", "proba", "names", "match"),
    [
        ([0, 1], [[0.5, 0.5]], ["a", "b"], "y_true has 2 labels but proba has 1 rows"),
        ([0], [[0.5, 0.5]], ["a"], "class_names has 1 names but proba has 2 columns"),
        ([2], [[0.5, 0.5]], ["a", "b"], r"y_true must lie in \[0, 1\]"),
        ([0.0], [[0.5, 0.5]], ["a", "b"], "integer class labels"),
        ([0], [[0.5, 0.6]], ["a", "b"], "row 0 sums to 1.1"),
        ([0], [[np.nan, 1.0]], ["a", "b"], "finite"),
        ([0], [0.5, 0.5], ["a", "b"], r"shape \(n, k\)"),
        ([], np.zeros((0, 2)), ["a", "b"], "non-empty"),
    ],
)
def test_bad_inputs_name_the_argument(y, proba, names, match) -> None:
    with pytest.raises(EvaluationError, match=match):
        evaluation_metrics(np.array(y), np.array(proba), names)


def test_select_misclassified_most_confident_first(centroid_predictions) -> None:
    images, y, proba = centroid_predictions
    sample = select_misclassified(images, y, proba, limit=12)
    assert sample.images.shape == (12, 28, 28) and sample.images.dtype == np.float32
    assert np.all(sample.y_true != sample.y_pred)
    np.testing.assert_array_equal(sample.y_true, y[sample.indices])
    np.testing.assert_array_equal(sample.y_pred, proba[sample.indices].argmax(axis=1))
    assert np.all(np.diff(sample.confidence) <= 0)
    wrong = proba.argmax(axis=1) != y
    assert sample.confidence[0] == proba[wrong].max()


def test_select_misclassified_with_no_mistakes() -> None:
    proba = np.eye(3, dtype=np.float32)
    sample = select_misclassified(np.zeros((3, 28, 28)), np.arange(3), proba)
    assert sample.images.shape == (0, 28, 28) and sample.indices.size == 0
