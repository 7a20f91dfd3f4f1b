"""Real MNIST digits for the predict tests: the mnist10k split, renders, a small trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from nn.io import save_model
from nn.model import MLP
from nn.train import TrainConfig, train
from tasks.data.idx import read_idx
from tasks.data.scaling import pixel_stats, prepare_images


def mnist10k(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mnist10k split of the real MNIST test set: X_train, y_train, X_test, y_test.

    Images uint8 (n, 28, 28), labels int64; 8,000 for training and 2,000 held out
    (``train_test_split(test_size=2000, stratify=labels, random_state=0)``).
    """
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    from sklearn.model_selection import train_test_split  # here: collection stays light

    X_train, X_test, y_train, y_test = train_test_split(
        images, labels, test_size=2000, stratify=labels, random_state=0
    )
    return X_train, y_train, X_test, y_test


def train_digit_model(
    X_train: np.ndarray, y_train: np.ndarray, path: Path, epochs: int = 3
) -> Path:
    """Train a standardised 784-300-10 MLP on uint8 (n, 28, 28) images and save it to ``path``.

    BLAS runs on one thread: on a shared two-core machine that is several times faster.
    """
    mean, std = pixel_stats(X_train)
    preprocessing = {"standardize": True, "mean": mean, "std": std}
    rng = np.random.default_rng(0)
    model = MLP.create((784, 300, 10), rng=rng)
    config = TrainConfig(epochs=epochs, batch_size=128, lr=0.05, momentum=0.9)
    with threadpool_limits(1):
        train(model, prepare_images(X_train, preprocessing), y_train, config, rng=rng)
    save_model(path, model, {"preprocessing": preprocessing, "dataset": {"name": "mnist10k"}})
    return path


def render(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Re-render a uint8 (28, 28) MNIST digit as a photo-like picture of another size.

    The digit is resized (Lanczos) to a random side in [40, 160] pixels, inverted half of
    the time (dark ink on light paper), padded by a random margin on each side (so it is
    off-centre) and returned in mode "L" or "RGB".
    """
    size = int(rng.integers(40, 161))
    big = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))
    if rng.random() < 0.5:
        big = 255 - big
    top, bottom, left, right = (int(v) for v in rng.integers(0, size, 4))
    padded = np.pad(big, ((top, bottom), (left, right)), constant_values=big[0, 0])
    picture = Image.fromarray(padded)
    return picture.convert("RGB") if rng.random() < 0.5 else picture
