"""Flow parameter models: ranges checked at the boundary, and forms the Prefect UI renders."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.params import (
    DataParams,
    PipelineOptions,
    RunOptions,
    SearchParams,
    TrainOptions,
    TrainParams,
)
from nn.config import RULES
from nn.train import TrainConfig
from tasks.settings import HYPER


def test_defaults_are_valid_and_build_a_train_config():
    params = TrainParams()
    config = TrainConfig.from_values(params.model_dump())
    assert config == TrainConfig()  # the network's own defaults
    assert {"hidden", "augment", "augment_strength"} <= set(params.model_dump()) - set(RULES)
    DataParams()
    SearchParams()
    PipelineOptions()


def test_the_bounds_of_the_training_fields_are_the_networks_rules():
    schema = TrainParams.model_json_schema()["properties"]
    for name, rule in RULES.items():
        low = "exclusiveMinimum" if rule.low_open else "minimum"
        assert schema[name].get(low) == rule.low, name
        assert list(TrainParams.model_fields) == list(HYPER)


def _flow_schemas() -> dict[str, dict]:
    """The parameter schema Prefect builds for each deployed flow (what its forms render)."""
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import mnist_pipeline
    from flows.train import mnist_train

    return {
        flow.name: parameter_schema(flow).model_dump_for_openapi()
        for flow in (mnist_pipeline, mnist_train)
    }


def _fields(schema: dict) -> dict[str, dict]:
    """``group.field`` -> the field's schema, over the models of a flow's parameters."""
    defs = schema["definitions"]
    fields = {}
    for group, prop in schema["properties"].items():
        model = defs[(prop.get("$ref") or prop["allOf"][0]["$ref"]).split("/")[-1]]
        fields.update({f"{group}.{n}": field for n, field in model["properties"].items()})
    return fields


def test_the_forms_show_no_none_and_offer_the_recipe_as_a_choice():
    """Prefect's form shows a field of type null as 'Property is type None' and an
    ``anyOf`` as a choice of types: each field has one type, a choice is a select."""
    import json

    for name, schema in _flow_schemas().items():
        assert "null" not in json.dumps(schema), name
        fields = _fields(schema)
        assert not [key for key, field in fields.items() if "anyOf" in field], name
        for key, field in fields.items():
            assert "type" in field or "enum" in field, key
            assert field.get("default") != "", key
    train = _fields(_flow_schemas()["mnist-train"])
    for name in ("augment", "optimizer", "schedule", "nesterov"):
        assert train[f"train.{name}"]["enum"][0] == "recipe", name
        assert train[f"train.{name}"]["default"] == "recipe", name
    assert train["train.schedule"]["enum"][1:] == list(RULES["schedule"].choices)
    pipeline = _fields(_flow_schemas()["mnist-pipeline"])
    assert pipeline["options.augment"]["enum"] == ["recipe", "none", "shift", "affine", "elastic"]
    assert pipeline["data.standardize"]["enum"] == ["recipe", True, False]
    assert "(empty: download)" in pipeline["data.data_dir"]["description"]


def test_the_choice_recipe_is_an_empty_field():
    assert TrainOptions(augment="recipe", nesterov="recipe").augment is None
    assert PipelineOptions(augment="recipe").augment is None
    assert DataParams(standardize="recipe").standardize is None
    with pytest.raises(ValidationError, match="data_dir"):
        DataParams(data_dir=3)


def test_flow_parameter_forms_show_plain_text():
    """The Prefect UI's forms: no HTML-like <...>, no reST markup, no command-line options,
    no default written in a description (the form shows the value it will use)."""
    import json
    import re

    for schema in _flow_schemas().values():
        descriptions = re.findall(r'"description": "((?:[^"\\]|\\.)*)"', json.dumps(schema))
        assert len(descriptions) > 20
        for text in descriptions:
            assert not re.search(r"<[^<>]*>|:[a-z]+:`|``|(?<![\w-])--[a-z]|\(default", text), text


def test_the_forms_offer_the_threads_of_the_training_one_by_default():
    for model in (RunOptions, PipelineOptions):
        field = model.model_json_schema()["properties"]["threads"]
        assert {k: field[k] for k in ("minimum", "maximum", "type")} == {
            "minimum": 1,
            "maximum": 1024,
            "type": "integer",
        }
        assert (
            "default" not in field
            and "(empty: 1, the same seed gives the same metrics" in field["description"]
        )
        with pytest.raises(ValidationError, match="threads"):
            model(threads=0)


def test_the_train_form_leaves_every_hyperparameter_to_the_recipe():
    """mnist_train's form: empty fields take the recipe; help says which value that is."""
    form = TrainOptions()
    assert form.recipe == "tuned" and all(getattr(form, name) is None for name in HYPER)
    decay = TrainOptions.model_json_schema()["properties"]["weight_decay"]["description"]
    from tasks.settings import recipe_for

    digits, fashion = (recipe_for(name)["weight_decay"] for name in ("mnist", "fashion-mnist"))
    assert f"{digits} for mnist/idx, {fashion} for fashion-mnist" in decay
    with pytest.raises(ValidationError, match="epochs"):
        TrainOptions(epochs=0)


def test_ranges_of_the_ui_form_are_the_declared_ones():
    schema = TrainParams.model_json_schema()["properties"]
    assert schema["epochs"]["minimum"] == RULES["epochs"].low
    assert schema["lr"]["exclusiveMinimum"] == 0 and "maximum" not in schema["lr"]
    assert schema["schedule"]["enum"] == list(RULES["schedule"].choices)


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (TrainParams, "lr", 0.0),
        (TrainParams, "lr", -1.0),
        (TrainParams, "epochs", 0),
        (TrainParams, "momentum", 1.0),
        (TrainParams, "schedule", "linear"),
        (TrainParams, "hidden", [0]),
        (TrainParams, "hidden", []),
        (DataParams, "dataset", "cifar"),
        (DataParams, "val_size", -1),
        (DataParams, "train_size", 5),
        (SearchParams, "trials", 0),
        (SearchParams, "n_jobs", 0),
        (SearchParams, "backend", "threads"),
        (PipelineOptions, "margin", 1.0),
        (PipelineOptions, "final_epochs", 0),
        (PipelineOptions, "seed", -1),
    ],
)
def test_out_of_range_values_name_the_field(model, field, value):
    with pytest.raises(ValidationError) as info:
        model(**{field: value})
    error = info.value.errors()[0]
    assert error["loc"][:1] == (field,) or f"{field}={value!r} must be" in error["msg"]


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="learning_rate"):
        TrainParams(learning_rate=0.1)


def test_cross_field_checks_use_the_train_config_rules():
    with pytest.raises(ValidationError, match="nesterov"):
        TrainParams(momentum=0.0, nesterov=True)
    with pytest.raises(ValidationError, match="warmup_epochs"):
        TrainParams(epochs=3, warmup_epochs=5)
