"""Run parameters, names and error messages outside a deployment (the integration tests
cover deployment runs on a real server)."""

from __future__ import annotations

import pytest

from flows.cli import name_options
from flows.params import DataParams, PipelineOptions, SearchParams
from flows.runs import effective_parameters, flow_errors, name_parameters, parameters_used
from tasks.errors import FetchError

GROUPS = {"data": DataParams, "search": SearchParams, "options": PipelineOptions}


def test_outside_a_deployment_parameters_are_used_as_given():
    options = PipelineOptions(seed=3)
    assert effective_parameters(options=options)["options"] is options
    rows = {r["parameter"]: r for r in parameters_used({"options": options, "data": DataParams()})}
    assert rows["options.seed"] == {"parameter": "options.seed", "value": 3, "source": "given"}
    assert rows["options.margin"]["source"] == "default"
    assert rows["data.mirror"] == {
        "parameter": "data.mirror",
        "value": "(the built-in mirrors)",
        "source": "default",
    }


def test_messages_name_parameters_for_a_flow_and_options_for_the_command_line():
    message = "could not fetch:\n  - a: refused.\nPass data_dir=FOLDER, or mirror=URL (seed=3)"
    flow_text = name_parameters(message, GROUPS)
    assert flow_text == (
        "could not fetch: - a: refused. Pass data.data_dir=FOLDER, or data.mirror=URL "
        "(options.seed=3)"
    )
    assert name_options(flow_text) == (
        "could not fetch: - a: refused. Pass --data-dir FOLDER, or --mirror URL (--seed 3)"
    )


def test_flow_errors_rewords_project_errors_in_place():
    with pytest.raises(FetchError) as info, flow_errors(GROUPS):
        raise FetchError("no source\nPass mirror=URL", transient=True)
    assert str(info.value) == "no source Pass data.mirror=URL" and info.value.transient
