"""The ``mnist-flow`` command line.

Subcommands: ``run`` (the whole pipeline), ``train`` (one training run with given
hyperparameters), ``evaluate`` (a saved model on a test set), ``models`` (the
registry) and ``predict`` (classify image files). Option defaults come from the
flows' parameter models (:mod:`flows.params`), so the command line and the
Prefect UI agree. User errors print ``mnist-flow: error: <message>`` on stderr
and exit with 2 (usage or configuration) or 1 (runtime: data, network, files).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

PROG = "mnist-flow"
EXIT_RUNTIME = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``mnist-flow: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after every option that has a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "(default" in text or default in (None, [], argparse.SUPPRESS) or not text:
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return text
        return f"{text} (default: %(default)s)"


def _default(model: type, name: str) -> Any:
    return model.model_fields[name].get_default(call_default_factory=True)


def _add_data_options(
    parser: argparse.ArgumentParser, *, with_out: bool = True, recipe: bool = False
) -> None:
    """The data options; with ``recipe``, ``--standardize`` defaults to the training recipe's."""
    from flows.params import DataParams
    from flows.recipes import recipe_help

    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        choices=["mnist", "fashion-mnist", "idx"],
        default=_default(DataParams, "dataset"),
        help="dataset to use ('idx': your own IDX files in --data-dir)",
    )
    group.add_argument("--data-dir", help="read the IDX files from this folder (no download)")
    group.add_argument("--mirror", help="download from this base URL instead of the built-in list")
    group.add_argument(
        "--cache-dir", help="cache of downloads, arrays, trials and models (default: user cache)"
    )
    group.add_argument(
        "--val-size",
        type=int,
        default=_default(DataParams, "val_size"),
        help="training images held out for validation (0: none; run needs some)",
    )
    group.add_argument(
        "--train-size", type=int, help="use only this many training images (default: all)"
    )
    group.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=None if recipe else _default(DataParams, "standardize"),
        help="standardise pixels to zero mean and unit variance"
        + (f" {recipe_help('standardize')}" if recipe else ""),
    )
    group.add_argument(
        "--fetch-retries",
        type=int,
        default=_default(DataParams, "fetch_retries"),
        help="retries of a download that failed on network errors",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    if with_out:
        group.add_argument(
            "--out", help="run directory (default: runs/<UTC timestamp>-<flow run name>)"
        )


def _add_registry_options(parser: argparse.ArgumentParser, *, margin: bool) -> None:
    parser.add_argument(
        "--registry", help="model registry folder (default: $MNIST_FLOW_REGISTRY or user data)"
    )
    if margin:
        parser.add_argument(
            "--margin",
            type=float,
            default=0.0,
            help="test-accuracy gain needed to replace the registry's champion",
        )


def _add_run(sub: argparse._SubParsersAction) -> None:
    from flows.params import PipelineOptions, SearchParams

    p = sub.add_parser(
        "run",
        help="fetch, tune, train, evaluate and report (the whole pipeline)",
        description="Random search on short trials without augmentation, then the final "
        "model: by default (--final-recipe tuned) the best trial's learning rate, batch size, "
        "momentum and weight decay with the dataset's training recipe (cosine schedule with "
        "warm-up, Nesterov momentum, augmentation: elastic for digits, affine with flips for "
        "fashion-mnist) for --final-epochs epochs; --augment none turns augmentation off, "
        "--final-recipe search keeps the best trial's parameters as they are.",
        formatter_class=_Formatter,
    )
    _add_data_options(p)
    g = p.add_argument_group("search")
    d = lambda name: _default(SearchParams, name)  # noqa: E731
    g.add_argument("--trials", type=int, default=d("trials"), help="random configurations")
    g.add_argument("--trial-epochs", type=int, default=d("trial_epochs"), help="epochs per trial")
    g.add_argument("--n-jobs", type=int, default=d("n_jobs"), help="trials at once (-1: all cores)")
    g.add_argument(
        "--backend", choices=["loky", "dask"], default=d("backend"), help="where trials run"
    )
    g.add_argument("--dask-address", help="dask scheduler address (default: a local cluster)")
    g.add_argument("--halving", action="store_true", help="successive halving of the trials")
    g.add_argument(
        "--space",
        nargs="+",
        default=[],
        metavar="NAME=SPEC",
        help="search-space overrides, e.g. lr=1e-3:0.3:log batch_size=64,128 augment=none,shift",
    )
    g.add_argument("--space-file", help="YAML/JSON mapping NAME: SPEC of search-space overrides")
    g.add_argument(
        "--augment",
        choices=["none", "shift", "affine", "elastic"],
        help="fix the augmentation of trials and final model (default: trials without, "
        "final model as the recipe says: elastic for digits, affine for fashion-mnist)",
    )
    f = p.add_argument_group("final model")
    f.add_argument(
        "--final-epochs",
        type=int,
        default=_default(PipelineOptions, "final_epochs"),
        help="epochs of the final model",
    )
    f.add_argument(
        "--final-recipe",
        choices=["tuned", "search"],
        default=_default(PipelineOptions, "final_recipe"),
        help="tuned: the best trial's lr, batch size, momentum and weight decay with the "
        "recipe's schedule, warm-up, Nesterov and augmentation; search: the best trial as is",
    )
    f.add_argument(
        "--patience",
        type=int,
        default=_default(PipelineOptions, "patience") or 0,
        help="stop the final training after this many epochs without val-loss gain (0: off)",
    )
    _add_registry_options(p, margin=True)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from flows.recipes import RECIPES, recipe_help

    p = sub.add_parser(
        "train",
        help="train one model with the given hyperparameters, evaluate and report",
        description="Train one model (no search), evaluate it on the test set and report. "
        "Options not given come from the dataset's training recipe (--recipe): 'tuned' "
        "(Nesterov SGD, warm-up and cosine schedule, weight decay, augmentation: elastic "
        "for digits, affine with flips for fashion-mnist) or 'plain' (SGD, constant "
        "learning rate, pixels in [0, 1]). The recipe's warm-up and Nesterov momentum go "
        "with its schedule and momentum: another --schedule turns them off by default, as "
        "--momentum 0 does Nesterov; --augment none --schedule constant --weight-decay 0 is "
        "plain minibatch SGD.",
        formatter_class=_Formatter,
    )
    _add_data_options(p, recipe=True)
    g = p.add_argument_group("training")
    g.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default=RECIPES[0],
        help="where the defaults of the options below come from",
    )
    h = lambda text, key: f"{text} {recipe_help(key)}"  # noqa: E731
    g.add_argument("--epochs", type=int, help=h("passes over the data", "epochs"))
    g.add_argument("--batch-size", type=int, help=h("minibatch size", "batch_size"))
    g.add_argument("--lr", type=float, help=h("initial learning rate", "lr"))
    g.add_argument("--optimizer", choices=["sgd", "adam"], help=h("update rule", "optimizer"))
    g.add_argument("--momentum", type=float, help=h("SGD momentum", "momentum"))
    g.add_argument(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        help=h("Nesterov momentum", "nesterov"),
    )
    g.add_argument(
        "--weight-decay", type=float, help=h("L2 penalty on the weights", "weight_decay")
    )
    g.add_argument(
        "--schedule",
        choices=["constant", "step", "exponential", "cosine"],
        help=h("learning-rate schedule", "schedule"),
    )
    g.add_argument("--decay", type=float, help="schedule decay (default: the schedule's own)")
    g.add_argument("--step-size", type=int, help="epochs per step of the step schedule")
    g.add_argument("--warmup-epochs", type=int, help=h("linear warm-up epochs", "warmup_epochs"))
    g.add_argument(
        "--patience",
        type=int,
        help="early stopping on validation loss, best weights restored (default: 0, off)",
    )
    g.add_argument("--hidden", help=h("hidden sizes, e.g. 500,100", "hidden"))
    g.add_argument(
        "--augment",
        choices=["none", "shift", "affine", "elastic"],
        help=h("random transformation of each training minibatch", "augment"),
    )
    g.add_argument(
        "--augment-strength",
        type=float,
        default=1.0,
        help="multiplies every augmentation magnitude, in [0, 3]",
    )
    _add_registry_options(p, margin=True)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a saved model on a dataset's test set",
        description="Evaluate a saved model on the test set of a dataset and write a report.",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", help="model .npz (default: the registry's champion)")
    _add_data_options(p)
    _add_registry_options(p, margin=False)


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the models in the registry",
        description="List the registered models; '*' marks each dataset's champion.",
        formatter_class=_Formatter,
    )
    p.add_argument("--dataset", help="only the models of this dataset")
    _add_registry_options(p, margin=False)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files (PNG, JPEG, ...) or folders of them",
        description="Classify images with a saved model.",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", help="model .npz (default: the registry's champion)")
    p.add_argument("--top", type=int, default=1, help="show the K most likely classes")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--csv", help="also write the predictions to this CSV file")
    _add_registry_options(p, margin=False)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mnist-flow``."""
    parser = _Parser(
        prog=PROG,
        description="Train and tune a from-scratch numpy MLP on MNIST with Prefect.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_run, _add_train, _add_evaluate, _add_models, _add_predict):
        add(sub)
    return parser


def _error(message: str, code: int, limit: int = 400) -> int:
    """Print ``message`` as one line (long ones cut: the run's log has the details)."""
    line = " ".join(str(message).split())
    if len(line) > limit:
        line = line[: limit - 30].rstrip() + " ... (details in the log above)"
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


def _validation_message(exc: Any) -> str:
    """One line from a pydantic ValidationError, fields named like the command-line options."""
    parts = []
    for err in exc.errors():
        loc = [str(item) for item in err.get("loc", ()) if not isinstance(item, int)]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if not loc:  # a check across fields: the message names them
            parts.append(message)
            continue
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"--{loc[-1].replace('_', '-')}: {message}{shown}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary local server migrates a new database on first use: slow on a busy laptop.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0

    from pydantic import ValidationError

    from nn.errors import ConfigError, MnistFlowError
    from tasks.errors import SearchSpaceError

    try:
        from flows.commands import dispatch

        return dispatch(args)
    except ValidationError as exc:
        return _error(_validation_message(exc), EXIT_USAGE)
    except (ConfigError, SearchSpaceError) as exc:
        return _error(str(exc), EXIT_USAGE)
    except MnistFlowError as exc:
        return _error(str(exc), EXIT_RUNTIME)
    except OSError as exc:  # disk full, permissions, ... outside the project's own checks
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}", EXIT_RUNTIME)
    except KeyboardInterrupt:
        return _error("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
