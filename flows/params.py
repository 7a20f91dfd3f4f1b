"""Parameters of the flows, validated once at the flow boundary.

The flows take these pydantic models as parameters, so the Prefect UI renders
them as forms and a bad value fails before any work starts, with a message
naming the field. The command line builds the same models from its options.
Every random choice of a run derives from the single ``seed`` parameter of the
flow that owns it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nn.errors import ConfigError

Dataset = Literal["mnist", "fashion-mnist", "idx"]
Backend = Literal["loky", "dask"]
Schedule = Literal["constant", "step", "exponential", "cosine"]
Augment = Literal["none", "shift", "affine", "elastic"]
FinalRecipe = Literal["tuned", "search"]

__all__ = [
    "DataParams",
    "PipelineOptions",
    "RunOptions",
    "SearchParams",
    "TrainParams",
    "ValidationError",
    "parse_hidden",
]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Params):
    """Where the images come from and how they are split."""

    dataset: Dataset = Field("mnist", description="Dataset to train on.")
    data_dir: str | None = Field(
        None, description="Folder of IDX files to read instead of downloading."
    )
    mirror: str | None = Field(None, description="Base URL to download from (overrides the list).")
    cache_dir: str | None = Field(
        None, description="Cache of downloads, arrays, trials and models (default: user cache)."
    )
    val_size: int = Field(
        10000,
        ge=0,
        le=59000,
        description="Training images held out for validation (0: none; the search needs some).",
    )
    train_size: int | None = Field(
        None, ge=10, le=60000, description="Use only this many training images (None: all)."
    )
    standardize: bool = Field(True, description="Standardise pixels to zero mean, unit variance.")
    fetch_retries: int = Field(
        2, ge=0, le=10, description="Retries of a fetch that failed on network errors."
    )


class TrainParams(_Params):
    """Hyperparameters of one training run (``mnist_train``, the final model of a pipeline)."""

    epochs: int = Field(15, ge=1, le=1000, description="Passes over the training set.")
    batch_size: int = Field(128, ge=1, le=65536, description="Minibatch size.")
    lr: float = Field(0.1, gt=0.0, le=10.0, description="Initial learning rate.")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="Update rule.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum.")
    nesterov: bool = Field(False, description="Nesterov momentum.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="L2 penalty on the weights.")
    schedule: Schedule = Field("cosine", description="Learning-rate schedule.")
    decay: float | None = Field(None, gt=0.0, description="Schedule decay (None: nn default).")
    step_size: int | None = Field(None, ge=1, description="Epochs per step (step schedule).")
    warmup_epochs: int = Field(0, ge=0, le=100, description="Linear warm-up epochs.")
    patience: int | None = Field(
        None, ge=1, le=1000, description="Early stopping patience on val loss (None: off)."
    )
    hidden: list[int] = Field([300], min_length=1, max_length=8, description="Hidden sizes.")
    augment: Augment = Field("none", description="Augmentation of training minibatches.")
    augment_strength: float = Field(
        1.0, ge=0.0, le=3.0, description="Multiplies every augmentation magnitude."
    )

    @field_validator("hidden")
    @classmethod
    def _hidden_sizes(cls, value: list[int]) -> list[int]:
        for size in value:
            if not 1 <= size <= 8192:
                raise ValueError(f"every hidden layer size must be in [1, 8192], got {size}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainParams:
        from nn.train import TrainConfig

        TrainConfig(**self.train_config())  # cross-field checks; ConfigError is a ValueError
        return self

    def train_config(self) -> dict[str, Any]:
        """The keyword arguments of ``nn.train.TrainConfig`` (unset optional ones left out)."""
        fields = self.model_dump(exclude={"hidden", "augment", "augment_strength"})
        return {key: value for key, value in fields.items() if value is not None}


class SearchParams(_Params):
    """The random search of the pipeline."""

    trials: int = Field(8, ge=1, le=1000, description="Number of random configurations.")
    trial_epochs: int = Field(2, ge=1, le=100, description="Epochs per trial.")
    n_jobs: int = Field(2, ge=-1, le=256, description="Trials run at once (-1: all cores).")
    backend: Backend = Field("loky", description="joblib backend of the trials.")
    dask_address: str | None = Field(None, description="Scheduler address for backend=dask.")
    halving: bool = Field(False, description="Successive halving instead of full trials.")
    space: dict[str, Any] = Field(
        default_factory=dict,
        description="Search-space overrides NAME: SPEC, e.g. lr: '1e-3:0.3:log'.",
    )

    @model_validator(mode="after")
    def _dask_address_needs_dask(self) -> SearchParams:
        if self.dask_address and self.backend != "dask":
            raise ValueError(f"dask_address={self.dask_address!r} needs backend='dask'")
        return self

    @field_validator("n_jobs")
    @classmethod
    def _jobs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be a positive number of workers, or -1 for all cores")
        return value


def parse_hidden(text: str) -> list[int]:
    """Parse ``"300"`` or ``"500,100"`` into hidden layer sizes.

    Raises
    ------
    ConfigError
        If an item is not a positive integer.
    """
    try:
        sizes = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(size < 1 for size in sizes):
        raise ConfigError(f"--hidden {text!r} must be positive integers separated by commas")
    return sizes


class RunOptions(_Params):
    """Seed, outputs and registry of a run."""

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of every random choice.")
    out_dir: str | None = Field(
        None, description="Run directory (default: runs/<UTC timestamp>-<flow run name>)."
    )
    registry_dir: str | None = Field(
        None, description="Model registry (default: $MNIST_FLOW_REGISTRY or user data)."
    )
    margin: float = Field(
        0.0, ge=0.0, lt=1.0, description="Test-accuracy gain needed to replace the champion."
    )


class PipelineOptions(RunOptions):
    """Options of ``mnist_pipeline`` beyond the data and the search.

    With ``final_recipe="tuned"`` the final model takes the learning rate, batch size,
    optimizer, momentum, weight decay and hidden size of the best trial, and the
    schedule, warm-up, Nesterov momentum and augmentation of the dataset's training
    recipe (:func:`flows.recipes.recipe_for`); ``"search"`` keeps the best trial's
    parameters as they are.
    """

    final_epochs: int = Field(60, ge=1, le=1000, description="Epochs of the final model.")
    final_recipe: FinalRecipe = Field(
        "tuned",
        description="tuned: the best trial's lr, batch size, momentum and weight decay with "
        "the dataset recipe's schedule, warm-up, Nesterov and augmentation; search: the best "
        "trial's parameters as they are.",
    )
    patience: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Early stopping of the final model on val loss (None: off).",
    )
    augment: Augment | None = Field(
        None,
        description="Fix the augmentation of trials and final model (None: trials without, "
        "final model as the recipe says, or the search's choice if it tuned augment).",
    )
