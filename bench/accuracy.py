"""Accuracy table of the 784-300-10 network: plain SGD against the training recipe.

For each dataset and recipe, trains one network per seed and prints a markdown
table: dataset, recipe, epochs, test accuracy (mean ± standard deviation over
the seeds, in %) and the mean wall time of one run (training plus evaluation).

Datasets, read from ``../shared/data`` beside the checkout (or
``$MNIST_FLOW_SHARED_DATA``):

- ``fashion-mnist``: the complete Fashion-MNIST, 60,000 training / 10,000 test images.
- ``mnist10k``: the real MNIST test set split stratified into 8,000 training and
  2,000 test images (``train_test_split(test_size=2000, stratify=labels, random_state=0)``),
  because the MNIST training images are not on these machines.

Recipes:

- ``plain``: SGD without momentum, constant learning rate 0.1, no weight decay,
  pixels in [0, 1], no augmentation (the original project's training).
- ``recipe``: the dataset's tuned recipe as ``mnist-flow train`` trains it, its values
  read from :func:`tasks.settings.recipes.recipe_for` (``mnist10k`` takes MNIST's): He
  initialisation, Nesterov momentum, warm-up then cosine decay, weight decay,
  standardised pixels and the augmentation of
  :func:`tasks.fitting.augment.default_augment`, gentler over the last epochs.
- ``recipe-noaug``: the same without augmentation, to show what augmentation adds.

``--validate`` holds out part of the training set (10%, stratified) and
reports accuracy on it instead of the test set: tune with it, then confirm on
the test set without it. Options such as ``--lr`` or ``--augment`` override
one setting of every recipe run (for exploration).

Examples::

    python bench/accuracy.py --dataset mnist10k --recipe plain recipe --seeds 3
    python bench/accuracy.py --dataset fashion-mnist --recipe recipe --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from nn.model import MLP
from nn.train import History, TrainConfig, train
from tasks.data.idx import read_idx
from tasks.fitting.augment import KINDS, AugmentConfig, default_augment, eased, make_augmenter
from tasks.settings.recipes import recipe_for, resolve

REPO_ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("fashion-mnist", "mnist10k")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one training run apart from the seed."""

    name: str
    train: TrainConfig
    augment: AugmentConfig
    standardize: bool
    init: str = "he"


def recommended(dataset: str, epochs: int | None = None) -> Recipe:
    """The tuned recipe for ``dataset`` (its own epochs unless given)."""
    name = "mnist" if dataset == "mnist10k" else dataset
    values = recipe_for(name)
    changes = {} if epochs is None else {"epochs": epochs}
    params = resolve({**values, **changes}, explicit=list(changes))
    augment = default_augment(name, params["augment"], params["augment_strength"])
    return Recipe("recipe", TrainConfig.from_values(params), augment, bool(values["standardize"]))


def make_recipe(name: str, dataset: str, epochs: int | None) -> Recipe:
    """The recipe called ``name`` (``plain``, ``recipe``, ``recipe-noaug``)."""
    if name == "plain":
        config = TrainConfig(epochs=epochs or 30, lr=0.1, momentum=0.0, schedule="constant")
        return Recipe("plain", config, AugmentConfig(kind="none"), standardize=False)
    best = recommended(dataset, epochs)
    if name == "recipe":
        return best
    if name == "recipe-noaug":
        return dataclasses.replace(best, name=name, augment=AugmentConfig(kind="none"))
    raise SystemExit(f"unknown recipe {name!r}; choose plain, recipe or recipe-noaug")


def shared_data_dir() -> Path:
    """``$MNIST_FLOW_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def mnist10k_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mnist10k split of the real MNIST test set: ``(X_train, y_train, X_test, y_test)``.

    uint8 images ``(n, 28, 28)`` and labels ``(n,)``: 8,000 for training, 2,000 for test.
    """
    folder = shared_data_dir() / "mnist"
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    X_train, X_test, y_train, y_test = train_test_split(
        images, labels, test_size=2000, stratify=labels, random_state=0
    )
    return X_train, y_train, X_test, y_test


def load_dataset(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)``: uint8 images (n, 784) and int64 labels (n,)."""
    data = shared_data_dir()
    if dataset == "fashion-mnist":
        folder = data / "fashion-mnist"
        X_train = read_idx(folder / "train-images-idx3-ubyte.gz")
        y_train = read_idx(folder / "train-labels-idx1-ubyte.gz")
        X_test = read_idx(folder / "t10k-images-idx3-ubyte.gz")
        y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    elif dataset == "mnist10k":
        X_train, y_train, X_test, y_test = mnist10k_split()
    else:
        raise SystemExit(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    flat = [np.asarray(X).reshape(len(X), -1) for X in (X_train, X_test)]
    return flat[0], np.asarray(y_train, np.int64), flat[1], np.asarray(y_test, np.int64)


def scale(
    X_train: np.ndarray, X_test: np.ndarray, standardize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels to [0, 1], then standardised with the training set's mean and std if asked."""
    train_f = X_train.astype(np.float32) / np.float32(255)
    test_f = X_test.astype(np.float32) / np.float32(255)
    if standardize:
        mean, std = float(train_f.mean()), float(train_f.std())
        train_f = (train_f - np.float32(mean)) / np.float32(std)
        test_f = (test_f - np.float32(mean)) / np.float32(std)
    return train_f, test_f


def run_once(
    recipe: Recipe, data: tuple[np.ndarray, ...], seed: int
) -> tuple[float, float, History]:
    """Train one network; returns (test accuracy, wall seconds, training history)."""
    X_train, y_train, X_test, y_test = data
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    Xtr, Xte = scale(X_train, X_test, recipe.standardize)
    model = MLP.create((784, 300, 10), activation="relu", init=recipe.init, rng=rng)
    augment = make_augmenter(recipe.augment)
    by_epoch = None if augment is None else eased(augment, recipe.train.epochs)
    history = train(model, Xtr, y_train, recipe.train, rng=rng, augment_by_epoch=by_epoch)
    _, accuracy = model.evaluate(Xte, y_test)
    return accuracy, time.perf_counter() - start, history


def _override(recipe: Recipe, dataset: str, args: argparse.Namespace) -> Recipe:
    """Apply the command line's per-setting overrides to a non-plain recipe."""
    if recipe.name == "plain":
        return recipe
    if args.strength is not None:
        kind = args.augment or recipe.augment.kind
        recipe = dataclasses.replace(
            recipe,
            name=f"{recipe.name} strength={args.strength}",
            augment=default_augment(
                "mnist" if dataset == "mnist10k" else dataset, kind, args.strength
            ),
        )
    train_keys = ("lr", "weight_decay", "schedule", "batch_size", "warmup_epochs", "momentum")
    changes = {k: getattr(args, k) for k in train_keys if getattr(args, k) is not None}
    aug_keys = ("max_shift", "max_rotation", "elastic_alpha", "elastic_sigma", "erase")
    aug_changes = {k: getattr(args, k) for k in aug_keys if getattr(args, k) is not None}
    if args.augment is not None:
        aug_changes["kind"] = args.augment
    if args.scale is not None:
        aug_changes["scale"] = (1.0 - args.scale, 1.0 + args.scale)
    suffix = "".join(f" {k}={v}" for k, v in {**changes, **aug_changes}.items())
    return dataclasses.replace(
        recipe,
        name=recipe.name + suffix,
        train=dataclasses.replace(recipe.train, **changes),
        augment=dataclasses.replace(recipe.augment, **aug_changes),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--recipe", nargs="+", default=["plain", "recipe"])
    parser.add_argument("--epochs", type=int, help="default: the recipe's own")
    parser.add_argument("--seeds", type=int, default=3, help="runs per row (seeds 0..n-1)")
    parser.add_argument("--validate", action="store_true", help="score on 10%% of train")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    group = parser.add_argument_group("overrides of the non-plain recipes (exploration)")
    group.add_argument("--lr", type=float)
    group.add_argument("--weight-decay", type=float)
    group.add_argument("--momentum", type=float)
    group.add_argument("--schedule", choices=("constant", "step", "exponential", "cosine"))
    group.add_argument("--batch-size", type=int)
    group.add_argument("--warmup-epochs", type=int)
    group.add_argument("--augment", choices=KINDS)
    group.add_argument("--strength", type=float, help="the dataset's defaults times this")
    group.add_argument("--max-shift", type=float)
    group.add_argument("--max-rotation", type=float)
    group.add_argument("--scale", type=float, help="zoom range 1 ± this")
    group.add_argument("--elastic-alpha", type=float)
    group.add_argument("--elastic-sigma", type=float)
    group.add_argument("--erase", type=float, help="random-erasing probability per image")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the table and print it; returns the exit status."""
    args = parse_args(argv)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        return _run_table(args)


def _run_table(args: argparse.Namespace) -> int:
    """Train every (dataset, recipe, seed) and print the rows as they complete."""
    rows = ["| dataset | recipe | epochs | test accuracy (%) | wall time per run (s) |"]
    rows.append("| --- | --- | ---: | ---: | ---: |")
    if args.validate:
        rows[0] = rows[0].replace("test accuracy", "validation accuracy")
    print("\n".join(rows), flush=True)
    for dataset in args.dataset:
        X_train, y_train, X_test, y_test = load_dataset(dataset)
        if args.validate:
            X_train, X_test, y_train, y_test = train_test_split(
                X_train, y_train, test_size=0.1, stratify=y_train, random_state=1
            )
        data = (X_train, y_train, X_test, y_test)
        for name in args.recipe:
            recipe = _override(make_recipe(name, dataset, args.epochs), dataset, args)
            accs, times = [], []
            for seed in range(args.seeds):
                acc, seconds, history = run_once(recipe, data, seed)
                accs.append(100.0 * acc)
                times.append(seconds)
                last = history.records[-1]
                print(
                    f"  {dataset} {recipe.name} seed {seed}: {100 * acc:.2f}% in {seconds:.0f} s "
                    f"(median epoch {np.median([r.seconds for r in history.records]):.2f} s, "
                    f"last epoch train loss {last.train_loss:.4f} "
                    f"accuracy {100 * last.train_accuracy:.2f}%)",
                    file=sys.stderr,
                    flush=True,
                )
            spread = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
            row = (
                f"| {dataset} | {recipe.name} | {recipe.train.epochs} | "
                f"{np.mean(accs):.2f} ± {spread:.2f} | {np.mean(times):.0f} |"
            )
            rows.append(row)
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
