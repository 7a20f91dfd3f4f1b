"""The declaration of every setting, grouped as the flows take them.

One :class:`~nn.config.Setting` per setting: the training ones are
:data:`nn.config.TRAINING` (what :class:`nn.config.TrainConfig` checks); the groups
here add the model, the data, the search and the run. Each group is an ordered
``name -> Setting`` mapping; the flows' parameter models (:mod:`flows.params`), the
command-line options (:mod:`flows.cli`) and the search space's bounds
(:mod:`tasks.tuning.space`) are built from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nn.config import TRAINING, Setting
from nn.errors import ConfigError
from tasks.data.datasets import DATASETS
from tasks.fitting.augment import KINDS

__all__ = [
    "DATA",
    "MODEL",
    "PIPELINE",
    "RECIPE",
    "RUN",
    "SEARCH",
    "TRAINING",
    "VAL_SHARE",
    "VAL_SIZE_MAX",
    "Setting",
    "check_values",
    "default_val_size",
]

VAL_SHARE = 6
"""The automatic validation split is one training image in ``VAL_SHARE``..."""
VAL_SIZE_MAX = 10_000
"""... and at most this many (MNIST's 60,000 training images: 50,000 + 10,000)."""


def _group(*settings: Setting) -> dict[str, Setting]:
    return {setting.name: setting for setting in settings}


MODEL = _group(
    Setting("hidden", list, [300], "hidden layer sizes, e.g. 500,100", 1, 8192),
    Setting("augment", str, "none", "random transformation of each training minibatch",
            choices=KINDS),
    Setting("augment_strength", float, 1.0, "multiplies every augmentation magnitude", 0.0, 3.0),
)  # fmt: skip
"""What a training run needs besides :data:`TRAINING`: the network and its augmentation."""

DATA = _group(
    Setting("dataset", str, "mnist", "dataset to use ('idx': your own IDX files in --data-dir)",
            choices=tuple(DATASETS)),
    Setting("data_dir", str, None, "read the IDX files from this folder", none="download"),
    Setting("mirror", str, None, "download from this base URL (http(s):// or file://)",
            none="the built-in mirrors"),
    Setting("cache_dir", str, None, "cache of downloads, arrays, trials and models",
            none="$MNIST_FLOW_CACHE or the user cache folder"),
    Setting("val_size", int, None, "training images held out for validation (0: none)", 0, None,
            none=f"a sixth of the training images, at most {VAL_SIZE_MAX:,}"),
    Setting("train_size", int, None, "train on only this many of the training images", 10, None,
            none="all"),
    Setting("standardize", bool, None, "standardise pixels to zero mean and unit variance",
            none="on"),
    Setting("fetch_retries", int, 2, "retries of a download that failed on network errors", 0, 10),
    Setting("data_store", str, None, "folder of the batches added with `mnist-flow data add`",
            none="$MNIST_FLOW_DATA or the user data folder"),
    Setting("data_version", str, "latest", "train on the base dataset plus the added batches "
            "up to this data version (an id of `mnist-flow data list`; base: none; latest: all)"),
)  # fmt: skip
"""Where the images come from and how they are split."""

SEARCH = _group(
    Setting("trials", int, 8, "configurations to try, the recipe's included", 1, 1000),
    Setting("trial_epochs", int, 18, "epochs of a trial that reaches the last round (its "
            "learning-rate schedule spans them)", 1, 1000),
    Setting("n_jobs", int, 2, "trials at once (-1: one per core)", -1, 256),
    Setting("backend", str, "loky", "where the trials run", choices=("loky", "dask")),
    Setting("dask_address", str, None, "dask scheduler address (with --backend dask)",
            none="a temporary local cluster"),
    Setting("halving", bool, True, "successive halving (factor 3): every trial trains the "
            "first epochs of its schedule, the best third and the recipe continue from their "
            "checkpoints, and so on up to --trial-epochs"),
    Setting("keep_checkpoints", bool, False, "keep the trials' checkpoints in the cache "
            "after the search"),
)  # fmt: skip
"""The random search of the pipeline (its space is given apart: ``--space``)."""

RUN = _group(
    Setting("seed", int, 0, "seed of every random choice", 0, 2**32 - 1),
    Setting("out_dir", str, None, "run directory", none="runs/<UTC time>-<flow run name>",
            option="--out"),
    Setting("registry_dir", str, None, "model registry folder",
            none="$MNIST_FLOW_REGISTRY or the user data folder", option="--registry"),
    Setting("margin", float, 0.0, "test-accuracy gain needed to replace the dataset's champion",
            0.0, 1.0, high_open=True),
    Setting("approve", bool, False, "pause before a promotion until a person approves or rejects "
            "it in the Prefect UI (needs a Prefect server: PREFECT_API_URL)"),
    Setting("threads", int, None, "BLAS threads of the (final) training; the search gives each "
            "trial its share of the cores", 1, 1024,
            none="1 (the same seed gives the same metrics)"),
)  # fmt: skip
"""Seed, outputs, registry and threads of a run."""

PIPELINE = _group(
    Setting("final_epochs", int, None, "epochs of the final model", 1, 10000,
            none="the recipe's, as mnist-flow train"),
    Setting("final_data", str, "all", "all: train the final model on every training image, as "
            "mnist-flow train does; split: on the search's training split, scored on its "
            "validation split after every epoch (needed by --patience; lets the final model "
            "continue the best trial)", choices=("all", "split")),
    Setting("final_recipe", str, "tuned", "tuned: the best trial's lr, batch size, momentum and "
            "weight decay with the recipe's schedule, warm-up, Nesterov and augmentation; "
            "search: the best trial as it is", choices=("tuned", "search")),
    dataclasses.replace(TRAINING["patience"], help="stop the final training after this many "
                        "epochs without a validation-loss gain, keeping the best weights"),
    dataclasses.replace(MODEL["augment"], default=None, help="fix the augmentation of the "
                        "trials and the final model",
                        none="trials without, final model as the recipe says"),
)  # fmt: skip
"""What ``mnist-flow run`` adds to :data:`RUN`: the final model after the search."""

RECIPE = Setting(
    "recipe",
    str,
    "tuned",
    "where the defaults of the training options come from",
    choices=("tuned", "plain"),
)


def check_values(group: Mapping[str, Setting], values: Mapping[str, Any]) -> None:
    """Check each value of ``values`` that ``group`` declares (others are ignored).

    Raises
    ------
    ConfigError
        ``"<name>=<value> must be ..."`` for the first value out of range.
    """
    for name, value in values.items():
        if name in group:
            group[name].check(value)
    if values.get("n_jobs") == 0:
        raise ConfigError("n_jobs=0 must be a number of workers >= 1, or -1 for one per core")


def default_val_size(n_images: int, n_classes: int) -> int:
    """The validation split of ``n_images`` training images when none is given.

    A sixth of them, at most :data:`VAL_SIZE_MAX`, and at least one per class (a
    stratified split needs it) while that leaves as many images to train on.
    """
    size = min(VAL_SIZE_MAX, n_images // VAL_SHARE)
    if size < n_classes <= n_images - n_classes:
        size = n_classes
    return size
