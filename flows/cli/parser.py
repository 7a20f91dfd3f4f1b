"""The parser of ``mnist-flow``: its subcommands and their options.

Option defaults come from the flows' parameter models (:mod:`flows.params`), so the
command line and the Prefect UI agree.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any, NoReturn

from flows.cli import cache, serve
from flows.params import (
    DataParams,
    PipelineOptions,
    RunOptions,
    SearchParams,
    TrainOptions,
    base_type,
    unset_text,
)
from tasks.settings import recipe_help

PROG = "mnist-flow"
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


def _hidden(text: str) -> list[int]:
    """``"300"`` or ``"500,100"``: the hidden layer sizes of ``--hidden``."""
    try:
        sizes = [int(item) for item in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be positive integers separated by commas, e.g. 500,100"
        )
    return sizes


OPTIONS = {"out_dir": "--out", "registry_dir": "--registry"}
"""The options not spelled after their field (``--batch-size`` for ``batch_size``)."""


def flag(name: str) -> str:
    """The command-line option of the field ``name``."""
    return OPTIONS.get(name) or "--" + name.replace("_", "-")


def spell(name: str, value: Any) -> str:
    """A setting and its value as typed on the command line: ``--lr 0.5``, ``--no-nesterov``."""
    if isinstance(value, bool):
        return flag(name) if value else "--no-" + flag(name)[2:]
    if isinstance(value, list | tuple):
        value = ",".join(map(str, value))
    return f"{flag(name)} {value}"


def _add(group: Any, model: Any, name: str, *, shown: str | None = None) -> None:
    """Add the option of the field ``name`` of ``model``; its help ends with its default
    (``shown``, else the field's, else what leaving it unset means)."""
    field = model.model_fields[name]
    default = field.get_default(call_default_factory=True)
    shown = shown or (None if default is not None else unset_text(field))
    help_text = field.description + (f" (default: {shown})" if shown else "")
    options: dict[str, Any] = {"dest": name, "default": default, "help": help_text}
    kind = base_type(field.annotation)
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is list:
        options.update(type=_hidden, metavar="N[,N...]")
    elif typing.get_origin(kind) is typing.Literal:
        options.update(type=str, choices=list(typing.get_args(kind)))
    else:
        options.update(type=kind, metavar=flag(name)[2:].upper().replace("-", "_"))
    group.add_argument(flag(name), **options)


def _add_group(parser: Any, title: str, model: Any, names: Any = None, **kw: Any) -> Any:
    group = parser.add_argument_group(title)
    for name in names or [n for n in model.model_fields if n != "space"]:
        _add(group, model, name, **kw.get(name, {}))
    return group


TRAIN_DATA_DEFAULTS = {
    "val_size": "0, every training image trains, as the recipe says; with --patience a sixth "
    "of them, at most 10,000",
    "standardize": "on; --recipe plain: off",
}
"""The defaults ``mnist-flow train`` shows for its data options that the recipe sets."""

ADDED_DATA = ("data_store", "data_version")  # the added batches: for training only


def _add_data_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The data options, then the run's seed and outputs (``run``, ``train``: all of them)."""
    names = [n for n in DataParams.model_fields if command != "evaluate" or n not in ADDED_DATA]
    shown = {n: {"shown": text} for n, text in TRAIN_DATA_DEFAULTS.items() if command == "train"}
    _add_group(parser, "data", DataParams, names, **shown)
    _add_group(parser, "run", RunOptions, ["seed", "out_dir"] if command == "evaluate" else None)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="fetch, tune, train, evaluate and report (the whole pipeline)",
        description="Random search anchored on the dataset's recipe (trial 0 is the recipe, "
        "the space is centred on it, every trial trains like the final model with the "
        "schedule compressed to --trial-epochs; successive halving continues promoted "
        "trials from their checkpoints), then the final model: the recipe unless a trial "
        "beat it on validation by more than one standard error, trained like mnist-flow "
        "train (every training image, the recipe's epochs); --final-data split trains on "
        "the search's split and may continue the chosen trial.",
        formatter_class=_Formatter,
    )
    _add_data_options(p, "run")
    g = _add_group(p, "search", SearchParams)
    g.add_argument(
        "--space",
        nargs="+",
        default=[],
        metavar="NAME=SPEC",
        help="search-space overrides, e.g. lr=1e-3:0.3:log batch_size=64,128 augment=none,shift",
    )
    g.add_argument("--space-file", help="YAML/JSON mapping NAME: SPEC of search-space overrides")
    final = [n for n in PipelineOptions.model_fields if n not in RunOptions.model_fields]
    _add_group(p, "final model", PipelineOptions, final)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model with the given hyperparameters, evaluate and report",
        description="Train one model (no search), evaluate it on the test set and report. "
        "Options not given come from the dataset's training recipe (--recipe): 'tuned' "
        "(Nesterov SGD, warm-up and cosine schedule, weight decay, augmentation: elastic "
        "for digits, affine with flips for fashion-mnist) or 'plain' (SGD, constant "
        "learning rate, pixels in [0, 1]). The recipe's warm-up and Nesterov momentum go "
        "with its schedule and momentum: another --schedule turns them off by default, as "
        "--momentum 0 does Nesterov; the warm-up never takes more than a quarter of the "
        "epochs unless given; --augment none --schedule constant --weight-decay 0 is "
        "plain minibatch SGD.",
        formatter_class=_Formatter,
    )
    _add_data_options(p, "train")
    shown = {n: {"shown": recipe_help(n)} for n in TrainOptions.model_fields if n != "recipe"}
    _add_group(p, "training", TrainOptions, **shown)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a saved model on a dataset's test set",
        description="Evaluate a saved model on the test set of a dataset and write a report.",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", help="model .npz (default: the registry's champion)")
    _add_data_options(p, "evaluate")
    _add(p, RunOptions, "registry_dir")


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the models in the registry, promote one, roll back, show the history",
        description="List the registered models ('*' marks each dataset's champion, DATA "
        "the data version each trained on); change the champion by hand.",
        formatter_class=_Formatter,
    )
    p.add_argument("--dataset", help="only the models of this dataset")
    p.add_argument("--history", action="store_true", help="every change of champion, oldest first")
    p.add_argument(
        "action",
        nargs="?",
        choices=("promote", "rollback"),
        help="promote VERSION: make it its dataset's champion; rollback: back to the champion "
        "the current one replaced (of --dataset, else of the latest promotion)",
    )
    p.add_argument("version", nargs="?", help="the version to promote (v0003 or 3)")
    p.add_argument("--reason", default="", help="why, recorded in the history")
    p.add_argument("--force", action="store_true", help="promote a worse model than the champion")
    _add(p, RunOptions, "registry_dir")


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="add labelled images to a dataset, list the data versions",
        description="Add batches of labelled images (each one an immutable data version that "
        "train and run use) and list them.",
        formatter_class=_Formatter,
    )
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    add = actions.add_parser(
        "add",
        help="add a folder of class subfolders (0/ ... 9/ or class names), or two IDX files",
        description="Check a batch of labelled images and store it as a new data version. "
        "Images are prepared as `predict` prepares them. An unknown class folder, an "
        "unreadable or blank image or a duplicate (within the batch or of an earlier batch) "
        "refuses the whole batch, unless --skip-bad. Emits the Prefect event "
        "mnist-flow.data.added.",
        formatter_class=_Formatter,
    )
    listing = actions.add_parser(
        "list", help="the data versions of a dataset", formatter_class=_Formatter
    )
    for parser in (add, listing):
        _add(parser, DataParams, "dataset")
        _add(parser, DataParams, "data_store")
    add.add_argument(
        "--skip-bad", action="store_true", help="add the good images, list the others as skipped"
    )
    add.add_argument("sources", nargs="+", metavar="FOLDER | IMAGES LABELS", help="what to add")


def _add_alerts(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "alerts",
        help="call a webhook when a retraining run fails or crashes (installs the automation)",
        description="Install, on the Prefect server of PREFECT_API_URL, the automation that "
        "POSTs a JSON message to --webhook whenever a run of mnist-retrain fails or crashes.",
        formatter_class=_Formatter,
    )
    p.add_argument("--webhook", required=True, metavar="URL", help="http(s) URL to call")


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
    _add(p, RunOptions, "registry_dir")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mnist-flow``."""
    parser = _Parser(
        prog=PROG,
        description="Train and tune a from-scratch numpy MLP on MNIST with Prefect.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_run, _add_train, _add_evaluate, _add_models, _add_predict, _add_data):
        add(sub)
    cache.add_parser(sub, _Formatter)
    _add_alerts(sub)
    serve.add_parser(sub, _Formatter)
    return parser
