"""``mnist_pipeline``: fetch -> preprocess -> random search -> final model -> test -> report.

The search is anchored on the dataset's training recipe (:mod:`tasks.tuning.anchor`):
trial 0 is the recipe, every trial trains like the final model with the schedule
compressed to ``trial_epochs``, and a trial replaces the recipe only when it beats it on
validation by more than the noise (:mod:`tasks.tuning.choice`), so the search cannot make
the model worse than ``mnist-flow train``. The final model
(:func:`tasks.settings.final_params`) trains on every training image
(``final_data="all"``), or on the search's split (``"split"``), where it may continue the
chosen trial's checkpoint. The search makes no choice on the test set.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, tags

from flows.common import prepare_data, preprocess_files, tag_flow_run, train_and_report
from flows.params import DataParams, PipelineOptions, SearchParams, TrainParams
from flows.runs import effective_parameters, flow_errors, parameters_used, run_name
from nn.checkpoint import remove_checkpoint
from nn.errors import ConfigError
from tasks.outputs.rundir import Timings, check_out_dir
from tasks.search import random_search
from tasks.settings import final_params, recipe_for
from tasks.tuning.choice import final_start
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
    A parameter a deployment run leaves out takes the deployment's value (flows/runs.py)."""
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
    recipe = recipe_for(data.dataset)
    if options.augment is not None:
        recipe["augment"] = options.augment
    final_epochs = options.final_epochs or recipe["epochs"]
    on_split = options.final_data == "split" or options.patience is not None
    with tags(data.dataset, "pipeline"):
        steps = prepare_data(data, options.seed, timings, options.registry_dir)
        with timings.step("search"):
            mode = "halving" if search.halving else "random"
            name = f"search-{mode}-{search.trials}x{search.trial_epochs}ep"
            result = random_search.with_options(task_run_name=name)(
                steps.prepared,
                search.model_dump(exclude={"space"}),
                seed=options.seed,
                space_overrides=dict(search.space),
                cache_dir=str(steps.cache_dir),
                extras_handler=augment_extras,
                recipe=recipe,
                keep_best=on_split and final_epochs == search.trial_epochs,
            )
        trial = result.choice.get("settings") or {}  # what the chosen trial trained with
        hyper = TrainParams(
            **final_params(
                {**trial, **result.best_params},
                data.dataset,
                final_recipe=options.final_recipe,
                epochs=final_epochs,
                patience=options.patience,
                augment=options.augment,
            )
        )
        start_from, start_note = final_start(
            hyper.model_dump(), trial or None, on_split, result.checkpoint
        )
        logger.info("final model (%s): %s", options.final_recipe, hyper.model_dump())
        logger.info("final model %s", start_note)
        final_steps = steps
        if not on_split:
            with timings.step("preprocess-final"):
                every = data.model_copy(update={"val_size": 0})
                final_steps = preprocess_files(
                    every, steps.files, options.seed, steps.cache_dir, steps.added, steps.check
                )
        try:
            summary = train_and_report(
                "pipeline",
                data,
                final_steps,
                hyper,
                options,
                timings,
                search={
                    "trials": result.trials,
                    "best": {
                        "params": result.best_params,
                        "val_accuracy": result.best_val_accuracy,
                        "trial": result.best_trial,
                    },
                    "placement": result.placement,
                    "choice": result.choice,
                    "final_start": start_note,
                },
                search_params=search.model_dump(),
                parameters_used=used,
                start_from=start_from,
            )
        finally:
            if result.checkpoint is not None and not search.keep_checkpoints:
                remove_checkpoint(result.checkpoint)
    spent = timings.to_dict()
    share = spent["search"] / max(spent["total"], 1e-9)
    logger.info("the search took %.0f s of the run's %.0f s (%.0f %%)", spent["search"],
                spent["total"], 100 * share)  # fmt: skip
    return summary


if __name__ == "__main__":
    mnist_pipeline()
