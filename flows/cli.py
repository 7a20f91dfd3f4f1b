"""The ``mnist-flow`` command line.

Subcommands: ``run`` (the whole pipeline), ``train`` (one training run with given
hyperparameters), ``evaluate`` (a saved model on a test set), ``models`` (the
registry), ``predict`` (classify image files), ``data`` (add labelled images),
``cache`` (what the cache holds; prune it), ``alerts`` (a webhook called when a
retraining fails) and ``serve`` (the champion as a web page and an HTTP API).
Option defaults come from the flows' parameter models (:mod:`flows.params`), so the
command line and the Prefect UI agree. User errors print ``mnist-flow: error: <message>`` on stderr
and exit with 2 (usage or configuration) or 1 (runtime: data, network, files);
Ctrl-C with 130 and ``SIGTERM`` with 143, the flow run crashed (:mod:`flows.lifetime`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, NoReturn

PROG = "mnist-flow"
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


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
    from flows.params import parse_hidden

    try:
        return parse_hidden(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be positive integers separated by commas, e.g. 500,100"
        ) from None


def _add(group: Any, setting: Any, *, default: Any = ..., default_text: str | None = None) -> None:
    """Add the option of one declared setting; its help ends with the default it takes."""
    from flows.params import describe

    options: dict[str, Any] = {"dest": setting.name, "help": describe(setting, default_text)}
    options["default"] = setting.default if default is ... else default
    if setting.kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif setting.kind is list:
        options.update(type=_hidden, metavar="N[,N...]")
    else:
        options["type"] = setting.kind
        if setting.choices:
            options["choices"] = list(setting.choices)
        else:
            options["metavar"] = setting.flag[2:].upper().replace("-", "_")
    group.add_argument(setting.flag, **options)


def _add_group(parser: argparse.ArgumentParser, title: str, settings: Any, **kwargs: Any) -> Any:
    group = parser.add_argument_group(title)
    for setting in settings:
        _add(group, setting, **kwargs)
    return group


TRAIN_DATA_DEFAULTS = {
    "val_size": "(default: 0, every training image trains, as the recipe says; with "
    "--patience a sixth of them, at most 10,000)",
    "standardize": "(default: on; --recipe plain: off)",
}
"""The defaults ``mnist-flow train`` shows for its data options that the recipe sets."""


ADDED_DATA = ("data_store", "data_version")  # the added batches: for training only


def _add_data_options(
    parser: argparse.ArgumentParser, *, run: bool = True, defaults: dict[str, str] | None = None
) -> None:
    """The data options, then the run's seed and outputs (``run``: also the registry).

    ``defaults`` replaces the ``(default: ...)`` text of the options it names.
    """
    from tasks.settings import DATA, RUN

    group = parser.add_argument_group("data")
    for name, setting in DATA.items():
        if run or name not in ADDED_DATA:  # evaluate scores on the test set only
            _add(group, setting, default_text=(defaults or {}).get(name))
    names = ("seed", "out_dir", "registry_dir", "margin", "approve", "threads")
    if not run:
        names = ("seed", "out_dir")
    _add_group(parser, "run", [RUN[name] for name in names])


def _add_registry_option(parser: argparse.ArgumentParser) -> None:
    from tasks.settings import RUN

    _add(parser, RUN["registry_dir"])


def _add_run(sub: argparse._SubParsersAction) -> None:
    from tasks.settings import PIPELINE, SEARCH

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
    _add_data_options(p)
    g = _add_group(p, "search", SEARCH.values())
    g.add_argument(
        "--space",
        nargs="+",
        default=[],
        metavar="NAME=SPEC",
        help="search-space overrides, e.g. lr=1e-3:0.3:log batch_size=64,128 augment=none,shift",
    )
    g.add_argument("--space-file", help="YAML/JSON mapping NAME: SPEC of search-space overrides")
    _add_group(p, "final model", PIPELINE.values())


def _add_train(sub: argparse._SubParsersAction) -> None:
    from tasks.settings import RECIPE
    from tasks.settings.recipes import HYPER, RECIPE_KEYS, recipe_help

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
    _add_data_options(p, defaults=TRAIN_DATA_DEFAULTS)
    g = p.add_argument_group("training")
    _add(g, RECIPE)
    for name, setting in HYPER.items():
        _add(
            g,
            setting,
            default=None,
            default_text=recipe_help(name) if name in RECIPE_KEYS else None,
        )


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a saved model on a dataset's test set",
        description="Evaluate a saved model on the test set of a dataset and write a report.",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", help="model .npz (default: the registry's champion)")
    _add_data_options(p, run=False)
    _add_registry_option(p)


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
    _add_registry_option(p)


def _add_data(sub: argparse._SubParsersAction) -> None:
    from tasks.settings import DATA

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
        _add(parser, DATA["dataset"])
        _add(parser, DATA["data_store"])
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
    _add_registry_option(p)
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mnist-flow``."""
    parser = _Parser(
        prog=PROG,
        description="Train and tune a from-scratch numpy MLP on MNIST with Prefect.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from flows.cache import add_parser as _add_cache

    for add in (_add_run, _add_train, _add_evaluate, _add_models, _add_predict, _add_data):
        add(sub)
    _add_cache(sub, _Formatter)
    _add_alerts(sub)
    from flows.serve.command import add_parser as _add_serve

    _add_serve(sub, _Formatter)
    return parser


def _error(message: str, code: int, limit: int = 400) -> int:
    """Print ``message`` as one line (long ones cut: the run's log has the details)."""
    line = " ".join(str(message).split())
    if len(line) > limit:
        line = line[: limit - 30].rstrip() + " ... (details in the log above)"
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


def _flags() -> dict[str, str]:
    """Setting name -> its command-line option, for every declared setting."""
    from tasks.settings import DATA, PIPELINE, RECIPE, RUN, SEARCH
    from tasks.settings.recipes import HYPER

    groups = (HYPER, DATA, SEARCH, RUN, PIPELINE, {RECIPE.name: RECIPE})
    return {name: setting.flag for group in groups for name, setting in group.items()}


def name_options(message: str) -> str:
    """``message`` with each ``name=value`` of a setting written as its option ``--name value``.

    ``"warmup_epochs=5 must be in [0, 2] (fewer than epochs=3)"`` becomes
    ``"--warmup-epochs 5 must be in [0, 2] (fewer than --epochs 3)"``; a flow's
    ``data.data_dir=FOLDER`` (:func:`flows.runs.name_parameters`) becomes ``--data-dir FOLDER``.
    """
    flags = _flags()

    def option(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in flags:
            return match.group(0)
        if value in ("True", "False"):  # a switch: --nesterov, --no-nesterov
            return flags[name] if value == "True" else "--no-" + flags[name][2:]
        return f"{flags[name]} {value}"

    return re.sub(r"(?<![\w.-])(?:[a-z]+\.)?([a-z][a-z0-9_]*)=(True|False|)", option, message)


def _validation_message(exc: Any) -> str:
    """One line from a pydantic ValidationError, fields named like the command-line options."""
    parts = []
    for err in exc.errors():
        loc = [str(item) for item in err.get("loc", ()) if not isinstance(item, int)]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if not loc or message.startswith(f"{loc[-1]}="):  # our own message names the setting
            parts.append(name_options(message))
            continue
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        flag = _flags().get(loc[-1], "--" + loc[-1].replace("_", "-"))
        parts.append(f"{flag}: {message}{shown}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary local server migrates a new database on first use: slow on a busy laptop.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return 0

    from pydantic import ValidationError

    from flows.diskfull import disk_full_line
    from nn.errors import ConfigError
    from tasks.errors import MnistFlowError, SearchSpaceError

    try:
        return _run_command(args)
    except ValidationError as exc:
        return _error(_validation_message(exc), EXIT_USAGE)
    except SearchSpaceError as exc:
        return _error(f"--space: {exc}", EXIT_USAGE)
    except ConfigError as exc:
        return _error(name_options(str(exc)), EXIT_USAGE)
    except MnistFlowError as exc:
        return _error(disk_full_line(exc, args) or name_options(str(exc)), EXIT_RUNTIME)
    except OSError as exc:  # disk full, permissions, ... outside the project's own checks
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(disk_full_line(exc, args) or f"{where}{exc.strerror or exc}", EXIT_RUNTIME)
    except KeyboardInterrupt:
        return _error("interrupted (Ctrl-C)", EXIT_INTERRUPTED)


def _run_command(args: argparse.Namespace) -> int:
    """Dispatch ``args``; a flow command runs guarded (:func:`flows.lifetime.guarded`)."""
    from flows.commands import FLOW_COMMANDS, dispatch

    if args.command not in FLOW_COMMANDS:
        return dispatch(args)
    from flows.lifetime import guarded, termination_signal

    try:
        with guarded():
            return dispatch(args)
    except termination_signal() as exc:
        return _error("terminated (SIGTERM)", 128 + int(exc.signal))


if __name__ == "__main__":
    sys.exit(main())
