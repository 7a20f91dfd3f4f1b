"""Run parameters, names and error messages outside a deployment (the integration tests
cover deployment runs on a real server)."""

from __future__ import annotations

import pytest

from flows.cli import spell, worded
from flows.params import DataParams, PipelineOptions, SearchParams
from flows.runs import effective_parameters, flow_errors, flow_spelling, parameters_used
from nn.config import SettingError
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
    error = FetchError("could not fetch:\n  - a: {{x}}. Pass {data_dir:FOLDER}, or {mirror:URL}")
    assert str(error) == "could not fetch:\n  - a: {x}. Pass data_dir=FOLDER, or mirror=URL"
    assert error.worded(flow_spelling(GROUPS)).endswith(
        "Pass data.data_dir=FOLDER, or data.mirror=URL"
    )
    assert worded(error).endswith("Pass --data-dir FOLDER, or --mirror URL")
    refused = SettingError("nesterov", False, "needs momentum")
    assert worded(refused) == "--no-nesterov needs momentum"
    assert refused.worded(flow_spelling(GROUPS)) == "nesterov=False needs momentum"  # no group
    assert spell("out_dir", "x") == "--out x" and spell("hidden", [5, 3]) == "--hidden 5,3"


def test_flow_errors_rewords_project_errors_in_place():
    with pytest.raises(FetchError) as info, flow_errors(GROUPS):
        raise FetchError("no source\nPass {mirror:URL}", transient=True)
    assert str(info.value) == "no source Pass data.mirror=URL" and info.value.transient
    assert worded(info.value) == "no source\nPass --mirror URL"  # the command line's words
    import pickle

    copy = pickle.loads(pickle.dumps(info.value))  # as a flow's state keeps it
    assert copy.transient and worded(copy) == worded(info.value)
    setting = pickle.loads(pickle.dumps(SettingError("lr", -1.0, "must be > 0")))
    assert worded(setting) == "--lr -1.0 must be > 0"
