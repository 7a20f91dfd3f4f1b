"""Validation accuracy of a training recipe: where the recipes' choices are made.

Trains the 784-300-10 network with a dataset's recipe (:mod:`tasks.settings.recipes`,
optionally with some settings changed) on 50,000 of its training images and scores it
on the other 10,000: the split ``mnist-flow train --val-size 10000 --seed 0`` makes
(stratified by label), the same split for every training seed, so that the seeds
measure the training's own spread. The test set is never read. Training goes through
:func:`tasks.fitting.fit.fit` as in ``mnist-flow train``: one BLAS thread, the
augmentation prepared in a thread of its own.

Prints one JSON line per run (validation accuracy, the validation curve every
``--every`` epochs, the wall time and the median epoch) and then the mean ± standard
deviation over the seeds.

Examples::

    python bench/validation.py --seeds 0 1 2                       # the MNIST recipe
    python bench/validation.py --seeds 0 1 2 --set epochs=100 weight_decay=2e-4
    python bench/validation.py --dataset fashion-mnist --set epochs=60
    python bench/validation.py --seeds 0 1 2 --ease-factor 1   # no easing at the end
    python bench/validation.py --seeds 0 1 2 --train-size 8000 # a small training set
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from accuracy import shared_data_dir  # noqa: E402

from nn.train import TrainConfig  # noqa: E402
from tasks.data.idx import read_idx  # noqa: E402
from tasks.data.prepare import PrepareParams, split_indices  # noqa: E402
from tasks.fitting import augment as augment_module  # noqa: E402
from tasks.fitting.augment import default_augment, make_augmenter  # noqa: E402
from tasks.fitting.fit import BLAS_THREADS, fit  # noqa: E402
from tasks.settings.recipes import HYPER, recipe_for, resolve  # noqa: E402

VAL_SIZE = 10_000


def load_split(dataset: str, standardize: bool) -> SimpleNamespace:
    """The 50,000 / 10,000 split of ``dataset``'s training file, scaled like the pipeline's."""
    folder = shared_data_dir() / dataset
    images = read_idx(folder / "train-images-idx3-ubyte.gz")
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    images = images.reshape(len(images), -1)
    train_idx, val_idx = split_indices(labels, PrepareParams(val_size=VAL_SIZE, seed=0))
    X_train = images[train_idx].astype(np.float32) / np.float32(255)
    X_val = images[val_idx].astype(np.float32) / np.float32(255)
    if standardize:
        mean, std = np.float32(X_train.mean()), np.float32(X_train.std())
        X_train, X_val = (X_train - mean) / std, (X_val - mean) / std
    return SimpleNamespace(
        X_train=X_train, y_train=labels[train_idx], X_val=X_val, y_val=labels[val_idx]
    )


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=60", "hidden=500"]`` -> ``{"epochs": 60, "hidden": [500]}`` (JSON values)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        settings[key] = value
    return settings


def main(argv: list[str] | None = None) -> int:
    """Train one network per seed and print its validation accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    parser.add_argument("--recipe", choices=("tuned", "plain"), default="tuned")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="recipe settings to change, e.g. epochs=60 weight_decay=2e-4",
    )
    parser.add_argument("--every", type=int, default=10, help="epochs between curve points")
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="train on the first N of the 50,000 training images only (a small dataset); "
        "the validation images stay the same 10,000",
    )
    parser.add_argument(
        "--ease-share",
        type=float,
        default=augment_module.EASE_SHARE,
        help="share of the last epochs trained with gentler augmentation (default %(default).3g)",
    )
    parser.add_argument(
        "--ease-factor",
        type=float,
        default=augment_module.EASE_FACTOR,
        help="their augmentation's magnitudes, as a share of the run's; 1: no easing "
        "(default %(default)g)",
    )
    args = parser.parse_args(argv)
    augment_module.EASE_SHARE, augment_module.EASE_FACTOR = args.ease_share, args.ease_factor
    recipe = recipe_for(args.dataset, args.recipe)
    changes = parse_settings(args.set)
    unknown = set(changes) - set(HYPER)
    if unknown:
        raise SystemExit(f"--set: unknown settings {', '.join(sorted(unknown))}")
    params = resolve({**recipe, **changes}, explicit=list(changes))
    config = TrainConfig.from_values(params)
    augment = default_augment(args.dataset, params["augment"], params["augment_strength"])
    splits = load_split(args.dataset, bool(recipe["standardize"]))
    if args.train_size is not None:
        if not 1 <= args.train_size <= len(splits.y_train):
            raise SystemExit(
                f"--train-size {args.train_size}: must be in [1, {len(splits.y_train)}]"
            )
        splits.X_train = splits.X_train[: args.train_size]
        splits.y_train = splits.y_train[: args.train_size]
    scores = []
    for seed in args.seeds:
        start = time.perf_counter()
        _, history = fit(
            splits, params["hidden"], 10, config, rng=np.random.default_rng(seed),
            augment=make_augmenter(augment), threads=BLAS_THREADS,
        )  # fmt: skip
        wall = time.perf_counter() - start
        curve = [100 * r.val_accuracy for r in history.records]
        scores.append(curve[-1])
        print(json.dumps({
            "dataset": args.dataset, "recipe": args.recipe, "changes": changes, "seed": seed,
            "train_size": len(splits.y_train),
            "ease": [args.ease_share, args.ease_factor],
            "val_accuracy": round(curve[-1], 2),
            "curve": [round(v, 2) for v in curve[args.every - 1 :: args.every]],
            "seconds": round(wall, 1),
            "median_epoch_seconds": round(statistics.median(r.seconds for r in history.records), 3),
        }), flush=True)  # fmt: skip
    spread = f" ± {statistics.stdev(scores):.2f}" if len(scores) > 1 else ""
    print(f"validation accuracy {statistics.mean(scores):.2f}{spread} % over seeds {args.seeds}"
          f" ({args.dataset}, {args.recipe} recipe, {json.dumps(changes)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
