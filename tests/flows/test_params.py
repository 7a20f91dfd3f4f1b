"""Flow parameter models: ranges checked at the boundary, best trial -> final hyperparameters."""

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
    parse_hidden,
    ui_text,
)
from nn.config import TRAINING
from nn.errors import ConfigError
from nn.train import TrainConfig
from tasks.settings import DATA, PIPELINE, RUN, SEARCH
from tasks.settings.recipes import HYPER


def test_defaults_are_valid_and_build_a_train_config():
    params = TrainParams()
    config = TrainConfig.from_values(params.model_dump())
    assert config == TrainConfig()  # the same declared defaults
    assert {"hidden", "augment", "augment_strength"} <= set(params.model_dump()) - set(TRAINING)
    DataParams()
    SearchParams()
    PipelineOptions()


@pytest.mark.parametrize(
    ("model", "group"),
    [
        (TrainParams, HYPER),
        (DataParams, DATA),
        (SearchParams, SEARCH),
        (PipelineOptions, {**RUN, **PIPELINE}),
    ],
)
def test_every_field_is_a_declared_setting_with_its_default_and_help(model, group):
    fields = {name: f for name, f in model.model_fields.items() if name != "space"}
    assert list(fields) == list(group)
    schema = model.model_json_schema()["properties"]
    for name, field in fields.items():
        assert field.get_default(call_default_factory=True) == group[name].default, name
        assert schema[name]["description"].startswith(ui_text(group[name].help)), name


def test_ui_text_keeps_what_the_prefect_ui_would_swallow_or_show_raw():
    assert ui_text("run directory (default: runs/<UTC time>-<flow run name>)") == (
        "run directory (default: runs/{UTC time}-{flow run name})"
    )
    assert ui_text("see :func:`tasks.settings.recipe_for` and ``mnist_train``") == (
        "see tasks.settings.recipe_for and mnist_train"
    )
    assert ui_text("files in --data-dir; --recipe plain: 30; --out DIR") == (
        "files in data_dir; recipe plain: 30; out_dir DIR"
    )
    assert ui_text("momentum > 0, lr in [0, 1)") == "momentum > 0, lr in [0, 1)"


def test_flow_parameter_forms_show_plain_text():
    """The Prefect UI's forms: no HTML-like <...>, no reST markup, no command-line options."""
    import json
    import re

    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import mnist_pipeline
    from flows.train import mnist_train

    for flow in (mnist_pipeline, mnist_train):
        schema = parameter_schema(flow).model_dump_for_openapi()
        descriptions = re.findall(r'"description": "((?:[^"\\]|\\.)*)"', json.dumps(schema))
        assert len(descriptions) > 20
        for text in descriptions:
            assert not re.search(r"<[^<>]*>|:[a-z]+:`|``|(?<![\w-])--[a-z]", text), text


def test_the_forms_offer_the_threads_of_the_training_one_by_default():
    for model in (RunOptions, PipelineOptions):
        field = model.model_json_schema()["properties"]["threads"]
        assert field["anyOf"][0] == {"minimum": 1, "maximum": 1024, "type": "integer"}
        assert field["default"] is None and "1 (the same seed" in field["description"]
        with pytest.raises(ValidationError, match="threads"):
            model(threads=0)


def test_the_train_form_leaves_every_hyperparameter_to_the_recipe():
    """mnist_train's form: empty fields take the recipe; help says which value that is."""
    form = TrainOptions()
    assert form.recipe == "tuned" and all(getattr(form, name) is None for name in HYPER)
    epochs = TrainOptions.model_json_schema()["properties"]["epochs"]["description"]
    from tasks.settings import recipe_for

    digits, fashion = recipe_for("mnist")["epochs"], recipe_for("fashion-mnist")["epochs"]
    assert f"{digits} for mnist/idx, {fashion} for fashion-mnist" in epochs
    with pytest.raises(ValidationError, match="epochs"):
        TrainOptions(epochs=0)


def test_ranges_of_the_ui_form_are_the_declared_ones():
    schema = TrainParams.model_json_schema()["properties"]
    assert schema["epochs"]["minimum"] == TRAINING["epochs"].low
    assert schema["lr"]["exclusiveMinimum"] == 0 and "maximum" not in schema["lr"]
    assert schema["schedule"]["enum"] == list(TRAINING["schedule"].choices)


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


def test_parse_hidden():
    assert parse_hidden("300") == [300]
    assert parse_hidden("500, 100") == [500, 100]
    for bad in ("", "x", "300,-1", "0", "300,,10", "300,"):
        with pytest.raises(ConfigError, match="--hidden"):
            parse_hidden(bad)
