"""prefect.yaml: the deployments parse, validate and point at real flows with valid parameters."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.params import DataParams, PipelineOptions, RunOptions, SearchParams, TrainOptions

ROOT = Path(__file__).resolve().parent.parent

# the flow parameter models, by entrypoint and parameter name
PARAMETER_MODELS = {
    "flows/pipeline.py:mnist_pipeline": {
        "data": DataParams,
        "search": SearchParams,
        "options": PipelineOptions,
    },
    "flows/train.py:mnist_train": {
        "data": DataParams,
        "train": TrainOptions,
        "options": RunOptions,
    },
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def deployments(config) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in config["deployments"]}


def test_prefect_accepts_the_file(config):
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(config)  # what `prefect deploy` validates with
    assert [d.name for d in model.deployments] == ["mnist-retrain", "mnist-train", "mnist-predict"]


def test_every_deployment_uses_the_process_pool(deployments):
    pools = [d["work_pool"] for d in deployments.values()]
    assert all(pool["name"] == "mnist-pool" for pool in pools)
    assert all(pool is pools[0] for pool in pools)  # one shared definition (YAML alias)


def test_retraining_is_weekly_and_training_ad_hoc(deployments):
    from prefect.client.schemas.schedules import CronSchedule

    (schedule,) = deployments["mnist-retrain"]["schedules"]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    minute, hour, day, month, weekday = cron.cron.split()
    assert (day, month) == ("*", "*") and weekday.isdigit()  # one day a week
    assert minute.isdigit() and hour.isdigit()  # once that day
    assert schedule["active"] is True
    assert deployments["mnist-train"]["schedules"] == []
    assert deployments["mnist-predict"]["schedules"] == []


def test_predict_deployment_points_at_the_folder_flow(deployments):
    path, function = deployments["mnist-predict"]["entrypoint"].split(":")
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    (flow_def,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    arguments = [a.arg for a in flow_def.args.args]
    assert arguments[:2] == ["model_path", "folder"]


def test_pull_step_resolves_to_the_checkout(config, monkeypatch):
    from prefect.utilities.templating import apply_values

    (step,) = config["pull"]
    assert list(step) == ["prefect.deployments.steps.set_working_directory"]
    monkeypatch.setenv("PWD", str(ROOT))
    resolved = apply_values(config["pull"], {}, remove_notset=False)  # as `prefect deploy` does
    assert resolved[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)


@pytest.mark.parametrize("name", ["mnist-retrain", "mnist-train"])
def test_entrypoints_exist_and_parameters_validate(deployments, name):
    deployment = deployments[name]
    entrypoint = deployment["entrypoint"]
    path, function = entrypoint.split(":")
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    (flow_def,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    decorators = [ast.unparse(d) for d in flow_def.decorator_list]
    assert any(d.startswith("flow") for d in decorators), decorators
    arguments = {a.arg for a in flow_def.args.args + flow_def.args.kwonlyargs}
    models = PARAMETER_MODELS[entrypoint]
    assert set(deployment["parameters"]) == set(models) <= arguments
    for key, model in models.items():
        model(**deployment["parameters"][key])  # extra="forbid": a typo fails here


def test_ad_hoc_training_trains_what_the_command_line_trains(deployments):
    """mnist-train's parameters resolve to what `mnist-flow train --dataset mnist` trains."""
    from flows.cli import build_parser
    from flows.cli.commands import data_params, train_options
    from tasks.settings import train_params

    parameters = deployments["mnist-train"]["parameters"]
    form = TrainOptions(**parameters["train"])
    deployed = train_params(parameters["data"]["dataset"], form.recipe, form.model_dump())
    args = build_parser().parse_args(["train", "--dataset", parameters["data"]["dataset"]])
    cli = train_options(args)
    assert deployed == train_params(args.dataset, cli.recipe, cli.model_dump())
    assert deployed["augment"] == deployed_recipe(parameters)["augment"]
    assert deployed["epochs"] == deployed_recipe(parameters)["epochs"]
    # the data: both train on every image, as the recipe says (no validation split)
    from tasks.settings import train_data

    data = DataParams(**parameters["data"]).model_dump()
    flow_data = train_data(parameters["data"]["dataset"], form.recipe, data, form.patience)
    assert flow_data["val_size"] == data_params(args).val_size == 0


def deployed_recipe(parameters: dict[str, Any]) -> dict[str, Any]:
    from tasks.settings import recipe_for

    return recipe_for(parameters["data"]["dataset"], parameters["train"]["recipe"])


@pytest.mark.parametrize(
    ("model", "command"),
    [(DataParams, "run"), (SearchParams, "run"), (PipelineOptions, "run"), (RunOptions, "train")],
)
def test_model_defaults_are_the_command_line_defaults(model, command):
    """The UI form's defaults (the pydantic models) are the command line's."""
    from flows.cli import build_parser

    args = vars(build_parser().parse_args([command]))
    for name, field in model.model_fields.items():
        if name in args and name != "space":  # --space NAME=SPEC items, parsed apart
            assert args[name] == field.get_default(call_default_factory=True), name


def test_deployment_parameters_are_declared_defaults_or_named_changes(deployments):
    """What the deployments set differs from the declared defaults only where they say so."""
    retrain = deployments["mnist-retrain"]["parameters"]
    changed = {
        key: value
        for group, model in PARAMETER_MODELS["flows/pipeline.py:mnist_pipeline"].items()
        for key, value in retrain[group].items()
        if value != model.model_fields[key].get_default(call_default_factory=True)
    }
    assert changed == {"margin": 0.001}


def test_the_forms_state_no_default_the_deployments_change(deployments):
    """A deployment's form shows its own values; a description never quotes another."""
    for entrypoint, models in PARAMETER_MODELS.items():
        (deployment,) = [d for d in deployments.values() if d["entrypoint"] == entrypoint]
        for group, values in deployment["parameters"].items():
            schema = models[group].model_json_schema()["properties"]
            for name, value in values.items():
                text = schema[name]["description"]
                assert "(default" not in text and "(empty" not in text, (name, text)
                assert value is not None  # the forms have no null (an empty field is left out)
    margin = PipelineOptions.model_json_schema()["properties"]["margin"]["description"]
    assert not any(char.isdigit() for char in margin)  # it said 0.0 beside the deployed 0.001


def test_retraining_final_model_uses_the_recipe(deployments):
    options = deployments["mnist-retrain"]["parameters"]["options"]
    assert options["final_recipe"] == "tuned"
    assert PipelineOptions(**options).patience is None  # no early stop under the cosine schedule


def test_retraining_is_triggered_by_new_data(deployments):
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from tasks.events import DATA_ADDED, RESOURCE_PREFIX

    (spec,) = deployments["mnist-retrain"]["triggers"]
    trigger = DeploymentEventTrigger.model_validate(spec)
    assert trigger.expect == {DATA_ADDED}
    assert trigger.match.model_dump() == {"prefect.resource.id": RESOURCE_PREFIX + "*"}
    assert set(trigger.parameters["data"]) == {"dataset", "data_store"}  # from the event
    assert all("event.payload." in value for value in trigger.parameters["data"].values())
