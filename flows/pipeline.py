"""``mnist_pipeline``: fetch -> preprocess -> random search -> final model -> test -> report.

How the final model uses the validation split: the search scores every trial on
the validation split; the final model is then trained with the best parameters
on the training split for ``final_epochs``, evaluated on the validation split
after every epoch (the ``history`` in ``metrics.json``), with early stopping on
the validation loss (``patience``) that restores the weights of the best epoch.
The validation images are never trained on, so the validation curves stay an
honest estimate and the test set is touched exactly once, by the evaluation.

Caching: fetch, preprocess, finished trials and the final model are cached on
their inputs (file checksums, parameters, seed, code version) under the cache
directory, so an identical re-run reuses everything and changing only
``final_epochs`` retrains only the final model.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, tags

from flows.common import prepare_data, tag_flow_run, train_and_report
from flows.outputs import Timings
from flows.params import DataParams, PipelineOptions, SearchParams, TrainParams
from tasks.search import random_search
from tasks.trial_extras import augment_extras


def final_params(best: dict[str, Any], options: PipelineOptions) -> TrainParams:
    """The final model's hyperparameters: the best trial's, with the final epochs and patience.

    ``hidden`` (one layer's units in the search space) becomes a one-item list,
    ``nesterov`` is switched off when ``momentum`` is 0 (as the trials do), and any
    extra parameter other than ``augment`` is ignored.
    """
    known = set(TrainParams.model_fields) - {"epochs", "patience", "hidden", "augment"}
    values: dict[str, Any] = {key: best[key] for key in known if key in best}
    if values.get("momentum", 0.9) == 0:
        values["nesterov"] = False
    if "warmup_epochs" in values:
        values["warmup_epochs"] = min(int(values["warmup_epochs"]), options.final_epochs - 1)
    hidden = best.get("hidden", 300)
    values["hidden"] = list(hidden) if isinstance(hidden, list | tuple) else [int(hidden)]
    values["augment"] = options.augment or best.get("augment", "none")
    return TrainParams(
        epochs=options.final_epochs,
        patience=options.patience,
        **values,
    )


@flow(
    name="mnist-pipeline",
    flow_run_name="pipeline-{data.dataset}-seed{options.seed}",
    validate_parameters=True,
)
def mnist_pipeline(
    data: DataParams = DataParams(),  # noqa: B008 - pydantic models are immutable
    search: SearchParams = SearchParams(),  # noqa: B008
    options: PipelineOptions = PipelineOptions(),  # noqa: B008
) -> dict[str, Any]:
    """Tune, train, evaluate and report; return the run summary (``run_dir``, accuracy, ...)."""
    logger = get_run_logger()
    timings = Timings()
    tag_flow_run(data.dataset, "pipeline")
    with tags(data.dataset, "pipeline"):
        files, prepared, cache_dir = prepare_data(data, options.seed, timings)
        space = dict(search.space)
        if options.augment is not None:
            space["augment"] = options.augment
        with timings.step("search"):
            name = f"search-{search.trials}x{search.trial_epochs}ep"
            result = random_search.with_options(task_run_name=name)(
                prepared,
                n_trials=search.trials,
                trial_epochs=search.trial_epochs,
                seed=options.seed,
                n_jobs=search.n_jobs,
                backend=search.backend,
                dask_address=search.dask_address,
                halving=search.halving,
                space_overrides=space,
                cache_dir=str(cache_dir),
                extras_handler=augment_extras,
            )
        logger.info(
            "best of %d trials: val accuracy %.4f with %s",
            len(result.trials),
            result.best_val_accuracy,
            result.best_params,
        )
        hyper = final_params(result.best_params, options)
        return train_and_report(
            "pipeline",
            data,
            files,
            prepared,
            cache_dir,
            hyper,
            options,
            timings,
            search={
                "trials": result.trials,
                "best": {"params": result.best_params, "val_accuracy": result.best_val_accuracy},
            },
            search_params=search.model_dump(),
        )


if __name__ == "__main__":
    mnist_pipeline()
