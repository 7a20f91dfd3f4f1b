"""``mnist_pipeline``: fetch -> preprocess -> random search -> final model -> test -> report.

What the search tunes and what the final model adds: the trials are short
(``trial_epochs``) and, unless the search space or ``augment`` says otherwise,
not augmented; they tune the learning rate, batch size, momentum and weight decay
(and whatever else the space holds). With ``final_recipe="tuned"`` (the default)
the final model takes those from the best trial and adds the dataset's training
recipe (:func:`tasks.settings.recipe_for`): cosine schedule with its warm-up,
Nesterov momentum and augmentation (elastic distortions for digits, gentle affine
transformations with flips for Fashion-MNIST), for ``final_epochs`` epochs (the
README's results table gives the accuracy and wall time of the default run).
``augment`` fixes the augmentation of trials and final model (``"none"`` turns it
off); a searched ``augment``/``augment_strength`` wins over the recipe's.
``final_recipe="search"`` keeps the best trial's parameters unchanged.

How the final model uses the validation split: the search scores every trial on
the validation split; the final model is then trained on the training split for
``final_epochs``, evaluated on the validation split after every epoch (the
``history`` in ``metrics.json``). Early stopping on the validation loss
(``patience``, which restores the weights of the best epoch) is off by default:
with augmentation and a cosine schedule the validation loss can stall early and
still improve in the low-learning-rate epochs at the end.
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
from flows.params import DataParams, PipelineOptions, SearchParams, TrainParams
from flows.runs import effective_parameters, flow_errors, parameters_used, run_name
from nn.errors import ConfigError
from tasks.outputs.rundir import Timings, check_out_dir
from tasks.search import random_search
from tasks.settings import final_params
from tasks.tuning.cluster import probe_scheduler
from tasks.tuning.extras import augment_extras, check_extra_names
from tasks.tuning.overrides import build_space

GROUPS = {"data": DataParams, "search": SearchParams, "options": PipelineOptions}


@flow(name="mnist-pipeline", flow_run_name=run_name("pipeline"), validate_parameters=True)
def mnist_pipeline(
    data: DataParams = DataParams(),  # noqa: B008 - pydantic models are immutable
    search: SearchParams = SearchParams(),  # noqa: B008
    options: PipelineOptions = PipelineOptions(),  # noqa: B008
) -> dict[str, Any]:
    """Tune, train, evaluate and report; return the run summary (run_dir, accuracy, ...).

    Each parameter a deployment run leaves out takes the deployment's value, then its
    default (flows/runs.py); the report and the mnist-parameters artifact list them all.
    """
    with flow_errors(GROUPS):
        params = effective_parameters(record=True, data=data, search=search, options=options)
        return _pipeline(**params)


def _pipeline(data: DataParams, search: SearchParams, options: PipelineOptions) -> dict[str, Any]:
    logger = get_run_logger()
    check_out_dir(options.out_dir)  # before any work, not after training
    check_extra_names(build_space(search.space).specs)  # not after running every trial
    used = parameters_used({"data": data, "search": search, "options": options})
    if data.val_size == 0:
        raise ConfigError("val_size=0: the search scores its trials on a validation split")
    if search.backend == "dask" and search.dask_address:
        probe_scheduler(search.dask_address)  # before any work: a wrong port fails at once
    if data.standardize is None:
        data = data.model_copy(update={"standardize": True})
    timings = Timings()
    tag_flow_run(data.dataset, "pipeline")
    with tags(data.dataset, "pipeline"):
        steps = prepare_data(data, options.seed, timings, options.registry_dir)
        space = dict(search.space)
        if options.augment is not None:
            space["augment"] = options.augment
        with timings.step("search"):
            name = f"search-{search.trials}x{search.trial_epochs}ep"
            result = random_search.with_options(task_run_name=name)(
                steps.prepared,
                search.model_dump(exclude={"space"}),
                seed=options.seed,
                space_overrides=space,
                cache_dir=str(steps.cache_dir),
                extras_handler=augment_extras,
            )
        logger.info(
            "best of %d trials: val accuracy %.4f with %s",
            len(result.trials),
            result.best_val_accuracy,
            result.best_params,
        )
        hyper = TrainParams(
            **final_params(
                result.best_params,
                data.dataset,
                final_recipe=options.final_recipe,
                epochs=options.final_epochs,
                patience=options.patience,
                augment=options.augment,
            )
        )
        logger.info("final model (%s): %s", options.final_recipe, hyper.model_dump())
        return train_and_report(
            "pipeline",
            data,
            steps,
            hyper,
            options,
            timings,
            search={
                "trials": result.trials,
                "best": {"params": result.best_params, "val_accuracy": result.best_val_accuracy},
                "placement": result.placement,
            },
            search_params=search.model_dump(),
            parameters_used=used,
        )


if __name__ == "__main__":
    mnist_pipeline()
