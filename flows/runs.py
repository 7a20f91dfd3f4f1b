"""What a flow run is: the parameters it used, its name, and errors worded for its caller.

Prefect merges a deployment's parameters with a run's by top-level key, so a run giving
``{"options": {"seed": 1}}`` would lose the deployment's other options:
:func:`effective_parameters` fills each field a run left out from the deployment, and
:func:`parameters_used` says where every value came from. :func:`run_name` tells runs
apart (kind, dataset, images, backend, trigger, seed, end of id or Prefect's name).
:func:`flow_errors` spells a setting an error names as a parameter
(``data.data_dir=FOLDER``), on one line, as the UI shows a run's message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

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

    The merged groups are validated again (a bad merge fails like a bad parameter). With
    ``record``, a completed run stores the values it uses, for the UI's Parameters tab.
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
