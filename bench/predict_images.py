"""Predicting digits in image files: agreement with the arrays, and throughput.

Trains (or loads with ``--model``) a standardised 784-300-10 network on the
mnist10k training split (8,000 real MNIST digits), then, for each seed, re-renders
``--n`` of the 2,000 held-out digits as PNG files the way the tests do (Lanczos
resize to a random side in [40, 160] pixels, inverted half of the time, a random
margin on each side, mode L or RGB) and classifies the files with
:func:`tasks.predict.predict_files`. Prints a markdown table per seed: agreement
of the labels with the model's labels on the original 28x28 arrays, accuracy on
the files and on the arrays, and the wall time per image of reading +
preprocessing and of scoring.

Also prints how often :func:`tasks.images.prepare.mnist_style` leaves an original MNIST
digit exactly unchanged. BLAS runs on one thread; timings on a shared machine
are noisy.

Example::

    python bench/predict_images.py --n 1000 --seeds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from accuracy import load_dataset
from PIL import Image
from threadpoolctl import threadpool_limits

from nn.io import save_model
from nn.model import MLP
from nn.train import TrainConfig, train
from tasks.data.scaling import pixel_stats, prepare_images
from tasks.images.classify import load_predictor, predict_files, score_images
from tasks.images.prepare import mnist_style, preprocess_file


def render(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A uint8 (28, 28) digit as a picture of another size, polarity and framing."""
    size = int(rng.integers(40, 161))
    big = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))
    if rng.random() < 0.5:
        big = 255 - big
    top, bottom, left, right = (int(v) for v in rng.integers(0, size, 4))
    padded = Image.fromarray(np.pad(big, ((top, bottom), (left, right)), constant_values=big[0, 0]))
    return padded.convert("RGB") if rng.random() < 0.5 else padded


def train_model(X_train: np.ndarray, y_train: np.ndarray, path: Path, epochs: int) -> Path:
    """Train the standardised 784-300-10 network on uint8 (n, 784) images; save it."""
    mean, std = pixel_stats(X_train)
    preprocessing = {"standardize": True, "mean": mean, "std": std}
    rng = np.random.default_rng(0)
    model = MLP.create((784, 300, 10), rng=rng)
    config = TrainConfig(epochs=epochs, batch_size=128, lr=0.05, momentum=0.9)
    train(model, prepare_images(X_train, preprocessing), y_train, config, rng=rng)
    save_model(path, model, {"preprocessing": preprocessing, "dataset": {"name": "mnist10k"}})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model .npz (default: train one on mnist10k)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs when training")
    parser.add_argument("--n", type=int, default=1000, help="images per seed (<= 2000)")
    parser.add_argument("--seeds", type=int, default=3, help="number of render seeds")
    args = parser.parse_args()

    X_train, y_train, X_test, y_test = load_dataset("mnist10k")
    X_train, X_test = X_train.reshape(-1, 28, 28), X_test.reshape(-1, 28, 28)
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or train_model(X_train, y_train, Path(tmp) / "m.npz", args.epochs)
        predictor = load_predictor(model_path)
        on_arrays = score_images(predictor, X_test).argmax(axis=1)
        exact = np.mean([(mnist_style(x / 255.0) == x).all() for x in X_test])
        print(
            f"model {model_path}: accuracy on the 2,000 arrays {np.mean(on_arrays == y_test):.4f}"
        )
        print(f"original digits left exactly unchanged by mnist_style: {exact:.3f}\n")
        print("| seed | images | agreement | accuracy files | accuracy arrays "
              "| read+preprocess ms/image | score ms/image |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            idx = rng.choice(len(X_test), size=args.n, replace=False)
            folder = Path(tmp) / f"seed{seed}"
            folder.mkdir()
            paths = []
            for i in idx:
                paths.append(folder / f"{i}.png")
                render(X_test[i], rng).save(paths[-1])
            start = time.perf_counter()
            images = np.stack([preprocess_file(p) for p in paths])
            prep = time.perf_counter() - start
            start = time.perf_counter()
            score_images(predictor, images)
            score = time.perf_counter() - start
            labels = np.array([p.label for p in predict_files(predictor, paths)])
            agree = np.mean(labels == on_arrays[idx])
            acc_files, acc_arrays = (
                np.mean(labels == y_test[idx]),
                np.mean(on_arrays[idx] == y_test[idx]),
            )
            print(
                f"| {seed} | {args.n} | {agree:.4f} | {acc_files:.4f} | {acc_arrays:.4f} "
                f"| {1000 * prep / args.n:.2f} | {1000 * score / args.n:.3f} |"
            )


if __name__ == "__main__":
    main()
