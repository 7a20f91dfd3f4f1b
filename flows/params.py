"""Parameters of the flows, built from the declared settings and validated at the boundary.

The flows take these pydantic models as parameters, so the Prefect UI renders them
as forms and a bad value fails before any work starts, with a message naming the
field. Every field comes from one declaration in :mod:`tasks.settings` (type, range
or choices, default, help text), as do the command-line options, so the two agree.
Every random choice of a run derives from the single ``seed`` parameter of the flow
that owns it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from nn.errors import ConfigError
from tasks.settings import DATA, PIPELINE, RECIPE, RUN, SEARCH, Setting, check_values
from tasks.settings.recipes import HYPER, RECIPE_KEYS, recipe_help
from tasks.tuning.cluster import check_backend

__all__ = [
    "DataParams",
    "PipelineOptions",
    "RunOptions",
    "SearchParams",
    "TrainOptions",
    "TrainParams",
    "ValidationError",
    "describe",
    "parse_hidden",
    "ui_text",
]


def ui_text(text: str) -> str:
    """``text`` as the Prefect UI's forms show it well: no ``<...>`` (taken for HTML and
    swallowed), no reStructuredText roles or literals, parameter names instead of options.

    ``"run directory (default: runs/<UTC time>-<flow run name>)"`` becomes
    ``"run directory (default: runs/{UTC time}-{flow run name})"``, ``"--recipe plain"``
    ``"recipe plain"``, ``":func:`a.b`"`` ``"a.b"``.
    """
    names = {s.flag: s.name for g in (DATA, SEARCH, RUN, PIPELINE, HYPER) for s in g.values()}
    names[RECIPE.flag] = RECIPE.name
    text = re.sub(r":[a-z:]+:`~?([^`]+)`", r"\1", text).replace("``", "")
    text = re.sub(r"<([^<>]*)>", r"{\1}", text)
    flag = r"(?<![\w-])--[a-z][a-z-]*"
    return re.sub(flag, lambda m: names.get(m.group(0), m.group(0)[2:].replace("-", "_")), text)


def _ui_schema(schema: dict[str, Any]) -> None:
    """Clean the descriptions of a model's JSON schema (the Prefect UI's form) with
    :func:`ui_text`."""
    for item in (schema, *schema.get("properties", {}).values()):
        if isinstance(item.get("description"), str):
            item["description"] = ui_text(item["description"])


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_ui_schema)


def describe(setting: Setting, default_text: str | None = None) -> str:
    """The help text of ``setting`` with its default: ``"minibatch size (default: 128)"``."""
    if default_text is None:
        default = setting.default
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        default_text = f"(default: {setting.none if default is None else shown})"
    return f"{setting.help} {default_text}"


def _annotation(setting: Setting, *, optional: bool) -> Any:
    if setting.kind is list:
        base: Any = list[int]
    elif setting.choices:
        base = Literal[setting.choices]  # type: ignore[valid-type]
    else:
        base = setting.kind
    return base | None if optional or setting.none else base


def _field(setting: Setting, *, default: Any = ..., description: str | None = None) -> Any:
    """``(annotation, FieldInfo)`` of ``setting``; ``default=None`` makes it optional."""
    value = setting.default if default is ... else default
    bounds: dict[str, Any] = {}
    if setting.kind in (int, float):
        if setting.low is not None:
            bounds["gt" if setting.low_open else "ge"] = setting.low
        if setting.high is not None and setting.high != float("inf"):
            bounds["lt" if setting.high_open else "le"] = setting.high
    optional = value is None
    annotation = Annotated[
        _annotation(setting, optional=optional), AfterValidator(_checked(setting, optional))
    ]
    return annotation, Field(value, description=description or describe(setting), **bounds)


def _checked(setting: Setting, optional: bool) -> Any:
    def check(value: Any) -> Any:
        return value if value is None and optional else setting.check(value)

    return check


def _model(name: str, doc: str, fields: dict[str, Any], base: type = _Params) -> Any:
    model = create_model(name, __base__=base, __doc__=doc, **fields)
    model.__module__ = __name__
    return model


def _fields(group: dict[str, Setting]) -> dict[str, Any]:
    return {name: _field(setting) for name, setting in group.items()}


class _CheckedSearch(_Params):
    def model_post_init(self, context: Any) -> None:
        check_values(SEARCH, {"n_jobs": self.n_jobs})  # type: ignore[attr-defined]
        if self.dask_address and self.backend != "dask":  # type: ignore[attr-defined]
            raise ConfigError(
                f"dask_address={self.dask_address!r} needs backend='dask'"  # type: ignore[attr-defined]
            )
        check_backend(self.backend, self.dask_address)  # type: ignore[attr-defined]


class _CheckedTrain(_Params):
    def model_post_init(self, context: Any) -> None:
        from tasks.settings import resolve

        given = self.model_dump()
        resolve(given, explicit=given)  # the checks across fields, on the values as given


DataParams = _model(
    "DataParams", "Where the images come from and how they are split.", _fields(DATA)
)

TrainParams = _model(
    "TrainParams",
    "Hyperparameters of one training run, every one given (the final model of a pipeline).",
    _fields(HYPER),
    base=_CheckedTrain,
)

TrainOptions = _model(
    "TrainOptions",
    "Hyperparameters of ``mnist_train``: each one left empty takes the dataset's recipe.",
    {
        "recipe": _field(RECIPE),
        **{
            name: _field(
                setting,
                default=None,
                description=describe(setting, recipe_help(name) if name in RECIPE_KEYS else None),
            )
            for name, setting in HYPER.items()
        },
    },
)

SearchParams = _model(
    "SearchParams",
    "The random search of the pipeline.",
    {
        **_fields(SEARCH),
        "space": (
            dict[str, Any],
            Field(
                default_factory=dict,
                description="search-space overrides NAME: SPEC, e.g. lr: '1e-3:0.3:log'",
            ),
        ),
    },
    base=_CheckedSearch,
)

RunOptions = _model("RunOptions", "Seed, outputs and registry of a run.", _fields(RUN))

PipelineOptions = _model(
    "PipelineOptions",
    "Options of ``mnist_pipeline`` beyond the data and the search: the final model.",
    _fields(PIPELINE),
    base=RunOptions,
)


def parse_hidden(text: str) -> list[int]:
    """Parse ``"300"`` or ``"500,100"`` into hidden layer sizes.

    Raises
    ------
    ConfigError
        If an item is empty or not a positive integer.
    """
    items = [item.strip() for item in text.split(",")]
    try:
        sizes = [int(item) for item in items]
    except ValueError:
        sizes = []
    if not sizes or any(size < 1 for size in sizes):
        raise ConfigError(f"--hidden {text!r} must be positive integers separated by commas")
    return sizes
