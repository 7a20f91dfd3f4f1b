"""What a flow run is: the parameters it used, its name, and errors worded for its caller.

Deployment parameters. Prefect merges a deployment's parameters with those given to
one of its runs *by top-level key*: the server copies the deployment's parameters and
updates them with the run's (``prefect/server/api/deployments.py``, the flow-run
creation endpoints), so ``prefect deployment run ... --params '{"options": {"seed": 1}}'``
replaces the deployment's whole ``options`` and every value left out falls back to the
declared default (the deployment's ``margin: 0.001`` became 0.0). The flows call
:func:`effective_parameters` first: each field a run did not give takes the deployment's
value, then the declared default. :func:`parameters_used` lists every value with where it
came from (the report's "Parameters used" table and the ``mnist-parameters`` artifact).

Run names tell runs apart: kind, dataset, training images, backend of the search,
trigger (``cli``, ``schedule``, ``event``, ``manual`` for a deployment run asked for by a
person or a script, ``local`` for a flow called from Python), seed, then the end of the run's
id, or for a deployment's run the name Prefect gave it at creation (``complex-bullfrog``,
printed by ``prefect deployment run``; a deployment cannot name its runs itself), which the
UI's search then finds: ``pipeline-mnist-train-all-manual-seed0-complex-bullfrog``.

Errors: an error that names a setting carries its name (:class:`nn.config.SettingError`,
:class:`tasks.errors.Worded`); the command line spells it as an option (``--data-dir
FOLDER``, :func:`flows.cli.spell`), a flow as a parameter (``data.data_dir=FOLDER``), on one
line, since the Prefect UI shows a run's message as one line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = [
    "effective_parameters",
    "flow_errors",
    "parameters_used",
    "run_name",
]

_DEPLOYMENT_PARAMETERS: dict[str, dict[str, Any]] = {}


def _flow_run() -> Any:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return context.flow_run if context is not None else None


def deployment_parameters() -> dict[str, Any]:
    """The parameters of the deployment that created this flow run (``{}`` outside one)."""
    flow_run = _flow_run()
    if flow_run is None or flow_run.deployment_id is None:
        return {}
    key = str(flow_run.id)
    if key not in _DEPLOYMENT_PARAMETERS:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment(flow_run.deployment_id)
        _DEPLOYMENT_PARAMETERS[key] = dict(deployment.parameters or {})
    return _DEPLOYMENT_PARAMETERS[key]


def effective_parameters(*, record: bool = False, **groups: BaseModel) -> dict[str, BaseModel]:
    """Each parameter group with the deployment's values for the fields the run left out.

    Outside a deployment run the groups come back as they are. The result is validated
    again, so a merged group that does not hold together fails like a bad parameter.
    With ``record``, a deployment run whose parameters were completed stores the values
    it uses as its parameters, so the UI's Parameters tab shows them.
    """
    defaults = deployment_parameters()
    merged: dict[str, BaseModel] = {}
    for name, model in groups.items():
        base = defaults.get(name)
        if isinstance(base, Mapping) and base:
            given = model.model_dump(include=model.model_fields_set)
            model = type(model)(**{**base, **given})
        merged[name] = model
    flow_run = _flow_run()
    if record and flow_run is not None and merged != groups:
        from prefect.client.orchestration import get_client

        values = {name: model.model_dump(mode="json") for name, model in merged.items()}
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, parameters={**flow_run.parameters, **values})
    return merged


def parameters_used(groups: Mapping[str, BaseModel]) -> list[dict[str, Any]]:
    """Rows ``parameter`` (``group.name``), ``value``, ``source`` of every parameter.

    ``source`` is ``deployment`` (the deployment's value), ``default`` (the declared
    default) or ``given`` (set for this run: an option, a run parameter). A value left
    empty shows what it stands for, in parentheses: ``(download)``, ``(the recipe's)``.
    """
    from flows.params import TrainOptions, unset_text

    defaults = deployment_parameters()
    rows = []
    for group, model in groups.items():
        base = defaults.get(group) if isinstance(defaults.get(group), Mapping) else {}
        values = model.model_dump(mode="json")
        for name, info in type(model).model_fields.items():
            value = values.get(name)  # an empty field is left out
            default = info.get_default(call_default_factory=True)
            if name in base and base[name] == value:
                source = "deployment"
            elif value == (default.model_dump() if isinstance(default, BaseModel) else default):
                source = "default"
            else:
                source = "given"
            if value is None:
                meaning = "the recipe's" if isinstance(model, TrainOptions) else unset_text(info)
                value = f"({meaning})"
            rows.append({"parameter": f"{group}.{name}", "value": value, "source": source})
    return rows


def _trigger(flow_run: Any) -> str:
    if "cli" in (flow_run.tags or []):
        return "cli"
    if flow_run.deployment_id is None:
        return "local"
    if flow_run.auto_scheduled:
        return "schedule"
    created_by = getattr(flow_run, "created_by", None)
    if created_by is not None and str(created_by.type).upper() == "AUTOMATION":
        return "event"
    return "manual"


def run_name(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<kind>-<dataset>-<images>[-<backend>]-<trigger>-...``."""

    def name() -> str:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        flow_run = context.flow_run
        if flow_run.name.startswith(f"{kind}-"):
            return flow_run.name  # named already: a retry of this run, or given so
        given = {k: v for k, v in (context.parameters or {}).items() if isinstance(v, BaseModel)}
        try:
            params = effective_parameters(**given)
        except Exception:  # the flow's body reports a bad merge; the name uses what was given
            params = given
        data, options = params["data"], params["options"]
        size = f"train{data.train_size}" if data.train_size else "train-all"
        parts = [kind, data.dataset, size]
        if "search" in params:
            parts.append(params["search"].backend)
        end = flow_run.name if flow_run.deployment_id is not None else flow_run.id.hex[-6:]
        parts += [_trigger(flow_run), f"seed{options.seed}", end]
        return "-".join(str(part) for part in parts)

    return name


def flow_spelling(groups: Mapping[str, type[BaseModel]]) -> Callable[[str, Any], str]:
    """How a flow names a setting: ``data.data_dir=FOLDER`` (the group of its parameter)."""
    owners = {field: group for group, model in groups.items() for field in model.model_fields}

    def spell(name: str, value: Any) -> str:
        return f"{owners[name]}.{name}={value}" if name in owners else f"{name}={value}"

    return spell


@contextlib.contextmanager
def flow_errors(groups: Mapping[str, type[BaseModel]]) -> Iterator[None]:
    """Re-raise a project error with its message on one line, settings named as parameters."""
    from tasks.errors import MnistFlowError

    try:
        yield
    except MnistFlowError as exc:
        if exc.args and isinstance(exc.args[0], str):
            message = exc.worded(flow_spelling(groups)) if hasattr(exc, "worded") else exc.args[0]
            exc.args = (" ".join(message.split()), *exc.args[1:])
        raise
