"""Every setting's type, bounds, default and help, declared once, as pydantic models.

The flows take these models as parameters, so the Prefect UI renders them as forms and a bad
value fails before any work starts, naming the field; the command-line options are generated
from the same fields. The training settings take their bounds from :data:`nn.config.RULES`
and :data:`MODEL_RULES`. A field left empty (``None``) says what it stands for in its
``unset`` text; a yes/no or a choice shows it as the first value, ``"recipe"``.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)

from nn.config import RULES, Rule, SettingError
from tasks.data.datasets import DATASETS
from tasks.settings.recipes import (
    DEFAULTS,
    HYPER,
    MODEL_RULES,
    RECIPES,
    UNSET,
    VAL_SIZE_MAX,
    recipe_help,
    resolve,
)
from tasks.tuning.cluster import check_backend

__all__ = [
    "BACKENDS",
    "UNSET",
    "DataParams",
    "PipelineOptions",
    "RunOptions",
    "SearchParams",
    "TrainOptions",
    "TrainParams",
    "ValidationError",
    "base_type",
    "unset_text",
]


def base_type(annotation: Any) -> Any:
    """``annotation`` without ``None``: ``int`` for ``int | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (kept,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return kept
    return annotation


def _named_unset(annotation: Any) -> bool:
    """Whether an optional field shows :data:`UNSET` as a choice (a yes/no or a choice)."""
    kept = base_type(annotation)
    return kept is not annotation and (kept is bool or typing.get_origin(kept) is Literal)


def unset_text(field: Any) -> str | None:
    """What an empty ``field`` stands for (``"download"``), None for a field always set."""
    extra = field.json_schema_extra
    return extra.get("unset") if isinstance(extra, dict) else None


def _form(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The JSON schema the Prefect UI renders well: no ``null`` type, what empty means."""
    for name, prop in schema.get("properties", {}).items():
        unset = prop.pop("unset", None)
        if "anyOf" in prop:
            (kept,) = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
            prop.update(kept)
            prop.pop("default", None)
        if _named_unset(model.model_fields[name].annotation):
            choices = prop.pop("enum", [True, False])
            prop.pop("type", None)  # the UI's select lists text and yes/no alike
            prop.update(enum=[UNSET, *choices], default=UNSET)
            prop["description"] += f" ({UNSET}: {unset})"
        elif unset:
            prop["description"] += f" (empty: {unset})"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_form)

    @model_serializer(mode="wrap")
    def _json(self, handler: Any, info: Any) -> Any:
        """The JSON form (a flow's default parameters, a run's) leaves empty fields out: a
        form shows them empty rather than as a null its field's type refuses."""
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None} if info.mode_is_json() else data

    @model_validator(mode="before")
    @classmethod
    def _unset_is_none(cls, data: Any) -> Any:
        """A choice of :data:`UNSET` (the forms' "recipe") is the empty value."""
        if not isinstance(data, dict):
            return data
        named = {n for n, f in cls.model_fields.items() if _named_unset(f.annotation)}
        return {k: None if k in named and v == UNSET else v for k, v in data.items()}


def _opt(description: str, unset: str, **bounds: Any) -> Any:
    """An optional field: ``None`` (left empty) stands for ``unset``."""
    return Field(None, description=description, json_schema_extra={"unset": unset}, **bounds)


def _bounds(rule: Rule) -> dict[str, float]:
    bounds: dict[str, float] = {}
    if rule.low is not None:
        bounds["gt" if rule.low_open else "ge"] = rule.low
    if rule.high is not None:
        bounds["lt" if rule.high_open else "le"] = rule.high
    return bounds


_HELP = {
    "epochs": "passes over the training set",
    "batch_size": "minibatch size",
    "lr": "initial learning rate",
    "optimizer": "update rule",
    "momentum": "SGD momentum",
    "nesterov": "Nesterov momentum (SGD with momentum > 0)",
    "weight_decay": "L2 penalty on the weights",
    "schedule": "learning-rate schedule",
    "decay": "decay factor of the step and exponential schedules",
    "step_size": "epochs per step of the step schedule",
    "warmup_epochs": "epochs of linear learning-rate warm-up (fewer than the epochs)",
    "patience": "stop after this many epochs without a validation-loss gain, keeping the "
    "best weights",
    "min_delta": "smallest validation-loss drop that counts as a gain",
    "beta1": "Adam's first-moment decay",
    "beta2": "Adam's second-moment decay",
    "epsilon": "Adam's denominator floor",
    "hidden": "hidden layer sizes, e.g. 500,100",
    "augment": "random transformation of each training minibatch (gentler in the last "
    "sixth of the epochs)",
    "augment_strength": "multiplies every augmentation magnitude",
}


def _hyper(name: str, *, optional: bool) -> tuple[Any, Any]:
    """``(annotation, field)`` of one hyperparameter; ``optional``: empty takes the recipe's."""
    rule = {**RULES, **MODEL_RULES}[name]
    bounds = _bounds(rule)
    if rule.kind is list:
        kind: Any = list[Annotated[int, Field(**bounds)]]
        bounds = {"min_length": 1}
    elif rule.choices:
        kind, bounds = Literal[rule.choices], {}  # type: ignore[valid-type]
    else:
        kind = rule.kind
    if optional:
        return kind | None, _opt(_HELP[name], recipe_help(name), **bounds)
    if rule.optional:
        return kind | None, _opt(_HELP[name], "off", **bounds)
    return kind, Field(DEFAULTS[name], description=_HELP[name], **bounds)


def _model(name: str, doc: str, base: type, fields: dict[str, Any]) -> Any:
    from pydantic import create_model

    model = create_model(name, __base__=base, __doc__=doc, **fields)
    model.__module__ = __name__
    return model


class DataParams(_Params):
    """Where the images come from and how they are split."""

    dataset: Literal[tuple(DATASETS)] = Field(  # type: ignore[valid-type]
        "mnist", description="dataset to use ('idx': your own IDX files in the data folder)"
    )
    data_dir: str | None = _opt("read the IDX files from this folder", "download")
    mirror: str | None = _opt(
        "download from this base URL (http(s):// or file://)", "the built-in mirrors"
    )
    cache_dir: str | None = _opt(
        "cache of downloads, arrays, trials and models",
        "$MNIST_FLOW_CACHE or the user cache folder",
    )
    val_size: int | None = _opt(
        "training images held out for validation (0: none)",
        f"a sixth of the training images, at most {VAL_SIZE_MAX:,}",
        ge=0,
    )
    train_size: int | None = _opt("train on only this many of the training images", "all", ge=10)
    standardize: bool | None = _opt(
        "standardise pixels to zero mean and unit variance", "on; plain recipe: off"
    )
    fetch_retries: int = Field(
        2, description="retries of a download that failed on network errors", ge=0, le=10
    )
    data_store: str | None = _opt(
        "folder of the batches added with `mnist-flow data add`",
        "$MNIST_FLOW_DATA or the user data folder",
    )
    data_version: str = Field(
        "latest",
        description="train on the base dataset plus the added batches up to this data "
        "version (an id of `mnist-flow data list`; base: none; latest: all)",
    )


class _Together(_Params):
    @model_validator(mode="after")
    def _together(self) -> Any:
        """The checks across fields (Nesterov needs momentum, the warm-up fewer epochs)."""
        given = self.model_dump()
        resolve(given, explicit=given)
        return self


TrainParams = _model(
    "TrainParams",
    "Hyperparameters of one training run, every one given (the final model of a pipeline).",
    _Together,
    {name: _hyper(name, optional=False) for name in HYPER},
)


class TrainOptions(_Params):
    """Hyperparameters of mnist_train: each one left empty takes the dataset's recipe."""

    recipe: Literal[RECIPES] = Field(  # type: ignore[valid-type]
        "tuned", description="where the defaults of the training options come from"
    )


TrainOptions = _model(
    "TrainOptions",
    TrainOptions.__doc__,
    TrainOptions,
    {name: _hyper(name, optional=True) for name in HYPER},
)


BACKENDS = ("loky", "dask")


class SearchParams(_Params):
    """The random search of the pipeline."""

    trials: int = Field(
        8, description="configurations to try, the recipe's included", ge=1, le=1000
    )
    trial_epochs: int = Field(
        18,
        description="epochs of a trial that reaches the last round (its learning-rate "
        "schedule spans them)",
        ge=1,
        le=1000,
    )
    n_jobs: int = Field(2, description="trials at once (-1: one per core)", ge=-1, le=256)
    backend: Literal[BACKENDS] = Field("loky", description="where the trials run")
    dask_address: str | None = _opt(
        "dask scheduler address (with the dask backend)", "a temporary local cluster"
    )
    halving: bool = Field(
        True,
        description="successive halving (factor 3): every trial trains the first epochs of "
        "its schedule, the best third and the recipe continue from their checkpoints, and "
        "so on up to the trial epochs",
    )
    keep_checkpoints: bool = Field(
        False, description="keep the trials' checkpoints in the cache after the search"
    )
    space: dict[str, Any] = Field(
        default_factory=dict,
        description="search-space overrides NAME: SPEC, e.g. lr: '1e-3:0.3:log'",
    )

    @model_validator(mode="after")
    def _runnable(self) -> SearchParams:
        if self.n_jobs == 0:
            raise SettingError(
                "n_jobs", 0, "must be a number of workers >= 1, or -1 for one per core"
            )
        if self.dask_address and self.backend != "dask":
            raise SettingError("dask_address", self.dask_address, "needs the dask backend")
        check_backend(self.backend, self.dask_address)
        return self


class RunOptions(_Params):
    """Seed, outputs, registry and threads of a run."""

    seed: int = Field(0, description="seed of every random choice", ge=0, le=2**32 - 1)
    out_dir: str | None = _opt("run directory", "runs/{UTC time}-{flow run name}")
    registry_dir: str | None = _opt(
        "model registry folder", "$MNIST_FLOW_REGISTRY or the user data folder"
    )
    margin: float = Field(
        0.0,
        description="test-accuracy gain needed to replace the dataset's champion",
        ge=0.0,
        lt=1.0,
    )
    approve: bool = Field(
        False,
        description="pause before a promotion until a person approves or rejects it in the "
        "Prefect UI (needs a Prefect server: PREFECT_API_URL)",
    )
    threads: int | None = _opt(
        "BLAS threads of the (final) training; the search gives each trial its share of the cores",
        "1, the same seed gives the same metrics",
        ge=1,
        le=1024,
    )


class PipelineOptions(RunOptions):
    """Options of mnist_pipeline beyond the data and the search: the final model."""

    final_epochs: int | None = _opt(
        "epochs of the final model", "the recipe's, as mnist-flow train", ge=1, le=10000
    )
    final_data: Literal["all", "split"] = Field(
        "all",
        description="all: train the final model on every training image, as mnist-flow "
        "train does; split: on the search's training split, scored on its validation split "
        "after every epoch (needed by patience; lets the final model continue the best "
        "trial)",
    )
    final_recipe: Literal["tuned", "search"] = Field(
        "tuned",
        description="tuned: the best trial's lr, batch size, momentum and weight decay with "
        "the recipe's schedule, warm-up, Nesterov and augmentation; search: the best trial "
        "as it is",
    )
    patience: int | None = _opt(
        "stop the final training after this many epochs without a validation-loss gain, "
        "keeping the best weights",
        "off",
        **_bounds(RULES["patience"]),
    )
    augment: Literal[MODEL_RULES["augment"].choices] | None = _opt(  # type: ignore[valid-type]
        "fix the augmentation of the trials and the final model",
        "trials without, final model as the recipe says",
    )
