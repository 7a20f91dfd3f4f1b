"""``mnist_train``: the pipeline without the search, hyperparameters given directly.

fetch -> preprocess -> train -> evaluate -> register -> report. Every hyperparameter
left empty in ``train`` (the UI's form, an option not given) takes the value of
``train.recipe`` for the dataset (:func:`tasks.settings.train_params`), so the form and
the command line train the same model by default.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, tags

from flows.common import prepare_data, tag_flow_run, train_and_report
from flows.params import DataParams, RunOptions, TrainOptions, TrainParams
from flows.runs import effective_parameters, flow_errors, parameters_used, run_name
from tasks.outputs.rundir import Timings, check_out_dir
from tasks.settings import train_data, train_params

GROUPS = {"data": DataParams, "train": TrainOptions, "options": RunOptions}


@flow(name="mnist-train", flow_run_name=run_name("train"), validate_parameters=True)
def mnist_train(
    data: DataParams = DataParams(),  # noqa: B008 - pydantic models are immutable
    train: TrainOptions = TrainOptions(),  # noqa: B008
    options: RunOptions = RunOptions(),  # noqa: B008
) -> dict[str, Any]:
    """Train one model, evaluate and report; return the run summary (run_dir, accuracy, ...).
    A parameter a deployment run leaves out takes the deployment's value (flows/runs.py)."""
    with flow_errors(GROUPS):
        params = effective_parameters(record=True, data=data, train=train, options=options)
        return _train(**params)


def _train(data: DataParams, train: TrainOptions, options: RunOptions) -> dict[str, Any]:
    check_out_dir(options.out_dir)  # before any work, not after training
    used = parameters_used({"data": data, "train": train, "options": options})
    given = train.model_dump(exclude={"recipe"})
    hyper = train_params(data.dataset, train.recipe, given)
    data = DataParams(
        **train_data(data.dataset, train.recipe, data.model_dump(), hyper["patience"])
    )
    timings = Timings()
    tag_flow_run(data.dataset, "train")
    with tags(data.dataset, "train"):
        steps = prepare_data(data, options.seed, timings, options.registry_dir)
        return train_and_report(
            "train", data, steps, TrainParams(**hyper), options, timings, parameters_used=used
        )


if __name__ == "__main__":
    mnist_train()
