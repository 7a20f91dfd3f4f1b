"""What each ``mnist-flow`` subcommand does once its options are parsed.

The flows' parameter models are built from the options first, so pydantic refuses a bad
value before a temporary Prefect server starts (:func:`run_flow`). Imported lazily by
:func:`flows.cli.main`, after the environment is set.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path
from typing import Any

from flows.cli import cache, imports_done, serve
from flows.params import DataParams, PipelineOptions, RunOptions, SearchParams, TrainOptions
from tasks.outputs.rundir import check_out_dir


def space_overrides(items: list[str], path: str | None) -> dict[str, Any]:
    """Search-space overrides from ``--space-file`` then ``--space NAME=SPEC`` items, raw
    (plain JSON for the flow's parameters) once :mod:`tasks.tuning.overrides` accepts them."""
    import yaml

    from tasks.tuning.extras import check_extra_names
    from tasks.tuning.overrides import build_space, load_space_file, parse_overrides

    raw: dict[str, Any] = {}
    if path:
        load_space_file(path)
        text = Path(path).read_text(encoding="utf-8")
        raw.update(yaml.safe_load(text))
    parse_overrides(items)
    for item in items:
        name, _, spec = item.partition("=")
        raw[name.strip()] = spec
    check_extra_names(build_space(raw).specs)  # before any trial runs
    return raw


def _values(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The options of ``args`` that are fields of ``model``."""
    return {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}


def data_params(args: argparse.Namespace) -> DataParams:
    """The data options of ``args``; for ``train``, those unset take the recipe's."""
    from tasks.settings import train_data

    values = _values(args, DataParams)
    if args.command == "train":
        values = train_data(args.dataset, args.recipe, values, args.patience)
    return DataParams(**values)  # run: mnist_pipeline standardises unless told otherwise


def _check(data: DataParams, out_dir: str | None, approve: bool = False) -> None:
    """Refuse, before any flow run, ``--approve`` without a Prefect UI to answer in (the
    commands' own server has none), a missing data folder or version, an unusable --out."""
    from prefect.settings import PREFECT_API_URL

    from nn.config import SettingError
    from tasks.data.versions import DataStore

    if approve and not PREFECT_API_URL.value():
        raise SettingError(
            "approve",
            True,
            "waits for a person in the Prefect UI: start a server (`make server`) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api",
        )
    if data.data_dir is not None and not Path(data.data_dir).is_dir():
        raise SettingError("data_dir", data.data_dir, "is not a directory")
    DataStore(data.data_store).select(data.dataset, data.data_version)
    check_out_dir(out_dir)


def run_flow(module: str, name: str, **parameters: Any) -> int:
    """Call the flow ``name`` of ``module`` on the command's Prefect server, its run watched;
    print its summary.

    A temporary server (:mod:`flows.local.server`) starts while the flow's module is
    imported; the watchdog marks the run Crashed if the command is killed.
    """
    from flows.local.server import temporary_server
    from flows.local.watchdog import watched

    with temporary_server() as ready:
        flow = getattr(importlib.import_module(module), name)
        imports_done()
        ready()
        result = watched(flow)(**parameters)
    print(f"run directory: {result['run_dir']}")
    print(f"test accuracy: {result['test_accuracy']:.4f}  test loss: {result['test_loss']:.4f}")
    if result.get("decision"):
        print(f"registry: {result['decision']}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``mnist-flow run``: the whole pipeline."""
    from nn.config import SettingError

    space = space_overrides(args.space, args.space_file)
    data = data_params(args)
    search = SearchParams(**{**_values(args, SearchParams), "space": space})
    options = PipelineOptions(**_values(args, PipelineOptions))
    if data.val_size == 0:
        raise SettingError("val_size", 0, "leaves no validation split to score the trials on")
    _check(data, options.out_dir, options.approve)
    return run_flow("flows.pipeline", "mnist_pipeline", data=data, search=search, options=options)


def train_options(args: argparse.Namespace) -> TrainOptions:
    """The training options of ``train``: the recipe and each option given (None: not given)."""
    return TrainOptions(**_values(args, TrainOptions))


def cmd_train(args: argparse.Namespace) -> int:
    """``mnist-flow train``: one training run, options not given taken from the recipe."""
    from nn.config import SettingError
    from tasks.settings import train_params

    data = data_params(args)
    train = train_options(args)
    train_params(data.dataset, train.recipe, train.model_dump())  # refuse bad options up front
    if train.patience is not None and data.val_size == 0:
        raise SettingError("patience", train.patience, "needs a validation split (val size 0)")
    options = RunOptions(**_values(args, RunOptions))
    _check(data, options.out_dir, options.approve)
    return run_flow("flows.train", "mnist_train", data=data, train=train, options=options)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``mnist-flow evaluate``: a saved model on a dataset's test set."""
    data = data_params(args)
    _check(data, args.out_dir)
    return run_flow(
        "flows.evaluate", "mnist_evaluate",
        model_path=args.model, data=data, out_dir=args.out_dir, registry_dir=args.registry_dir,
    )  # fmt: skip


def cmd_models(args: argparse.Namespace) -> int:
    """``mnist-flow models``: the registry as a table, its history, promote and rollback."""
    from nn.errors import ConfigError
    from tasks.registry import history
    from tasks.registry.store import Registry, format_models_table

    registry = Registry(args.registry_dir)
    if args.action == "promote":
        if args.version is None:
            raise ConfigError(
                "models promote: give the VERSION to promote (see `mnist-flow models`)"
            )
        entry = history.promote(registry, args.version, args.reason, force=args.force)
    elif args.action == "rollback":
        champion = registry.champion(args.dataset)
        dataset = args.dataset or (champion.dataset if champion else "mnist")
        entry = history.rollback(registry, dataset, args.reason)
    elif args.history:
        print(history.format_history(history.read_history(registry.root, args.dataset)))
        return 0
    else:
        versions = registry.list(args.dataset)
        broken = {v.version: why for v in versions if v.is_champion and (why := registry.broken(v))}
        print(format_models_table(versions, history.lineage(registry, versions), list(broken)))
        for version, why in broken.items():
            print(
                f"{version}: BROKEN ({why}); the next model registered for its dataset replaces "
                "it, or promote another with `mnist-flow models promote VERSION`"
            )
        return 0
    print(f"{entry['dataset']}: champion {entry['version']} (was {entry['previous'] or 'none'})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``mnist-flow predict``: classify image files with a saved model."""
    from tasks.images.classify import run_predict
    from tasks.registry.store import Registry

    model = args.model or str(Registry(args.registry_dir).model_path())
    text, code = run_predict(model, args.inputs, args.top, args.json, args.csv)
    print(text)
    return code


def cmd_data(args: argparse.Namespace) -> int:
    """``mnist-flow data add|list``: add a checked batch as a data version, list the versions."""
    from tasks.data.datasets import get_dataset
    from tasks.data.versions import BatchRefused, DataStore, add_batch, format_versions

    spec = get_dataset(args.dataset)
    store = DataStore(args.data_store)
    if args.data_command == "list":
        names = spec.names_of_classes(spec.n_classes or 10)
        print(format_versions(store.versions(spec.name), names))
        return 0
    try:
        version, skipped = add_batch(store, spec, args.sources, skip_bad=args.skip_bad)
    except BatchRefused as exc:
        _print_some("problem", exc.problems)
        raise
    _print_some("skipped", skipped)
    print(
        f"added data version {version.id} to {spec.name}: {version.n_images} images "
        f"({version.n_heldout} held out for evaluation) in {version.directory}"
    )
    from tasks.events import emit_data_added

    # Prefect's events worker warns "Still processing items" while it sends the one event.
    events_logger = logging.getLogger("EventsWorker")
    level = events_logger.level
    events_logger.setLevel(logging.ERROR)
    try:
        emit_data_added(version, str(store.root))
    finally:
        events_logger.setLevel(level)
    return 0


def _print_some(kind: str, problems: list[Any], shown: int = 5) -> None:
    """The first ``shown`` problems, one a line, then how many more."""
    for problem in problems[:shown]:
        print(f"{kind}: {problem}")
    if len(problems) > shown:
        print(f"{kind}: ... and {len(problems) - shown} more ({len(problems)} in all)")


def cmd_alerts(args: argparse.Namespace) -> int:
    """``mnist-flow alerts --webhook URL``: install the failed-retraining automation."""
    from prefect.settings import PREFECT_API_URL

    from flows.alerts import install_alerts
    from nn.errors import ConfigError

    if not PREFECT_API_URL.value():
        raise ConfigError("alerts live on a Prefect server: set PREFECT_API_URL (`make server`)")
    automation = install_alerts(args.webhook)
    print(f"automation {automation.name} ({automation.id}) calls {args.webhook}")
    return 0


COMMANDS = {
    "serve": serve.run,
    "alerts": cmd_alerts,
    "cache": cache.command,
    "data": cmd_data,
    "run": cmd_run,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "models": cmd_models,
    "predict": cmd_predict,
}


class _NoUserTracebacks(logging.Formatter):
    """Wraps a console formatter: a user error (project error, full disk), Ctrl-C or
    ``SIGTERM`` is logged without traceback, as the command line reports it on one line;
    the traceback still reaches the Prefect API, whose handler runs first."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        from prefect.exceptions import TerminationSignal

        from flows.cli.diskfull import full_disk_error
        from tasks.errors import MnistFlowError

        exc = record.exc_info[1] if record.exc_info else None
        user = isinstance(exc, MnistFlowError | KeyboardInterrupt | TerminationSignal)
        if not user and full_disk_error(exc) is None:
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def hide_user_tracebacks() -> None:
    """Install :class:`_NoUserTracebacks` on Prefect's console log handlers."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(
                handler.formatter, _NoUserTracebacks
            ):
                handler.setFormatter(_NoUserTracebacks(handler.formatter or logging.Formatter()))


RUN_TAGS = ("mnist-flow", "cli")
"""Tags of the flow runs a command starts: ``mnist-flow`` as on the deployments' runs
(``prefect.yaml``), ``cli`` to tell them apart (and to name them, :mod:`flows.runs`)."""

FLOW_COMMANDS = ("run", "train", "evaluate")
"""The subcommands that run Prefect flows (the others need no server)."""


def dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand named by ``args.command``; return the exit status. A flow command
    runs guarded by the watchdog (:func:`flows.local.watchdog.guarded`)."""
    if args.command not in FLOW_COMMANDS:
        imports_done()
        return COMMANDS[args.command](args)
    from prefect import tags
    from prefect.exceptions import TerminationSignal

    from flows.cli import error
    from flows.local.watchdog import guarded

    try:
        with guarded(), tags(*RUN_TAGS):
            hide_user_tracebacks()
            return COMMANDS[args.command](args)
    except TerminationSignal as exc:
        return error("terminated (SIGTERM)", 128 + int(exc.signal))
