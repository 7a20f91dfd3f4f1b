"""Tests of the search space: declaration, overrides, validation and deterministic sampling."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tasks.errors import SearchSpaceError
from tasks.tuning.overrides import build_space, load_space_file, parse_overrides, parse_value
from tasks.tuning.space import DEFAULT_SPACE, PARAMETERS, Choice, Range, SearchSpace, trial_seeds


def test_default_space_fixes_hidden_at_300_and_has_every_issue_parameter() -> None:
    space = build_space()
    for name in ("lr", "batch_size", "momentum", "nesterov", "weight_decay", "schedule", "decay"):
        assert name in space.specs
    assert space.specs["hidden"] == Choice((300,))
    assert {space.sample(0, i)["hidden"] for i in range(20)} == {300}
    assert space.extras == ()


def test_sampling_is_deterministic_per_seed_and_index() -> None:
    space = build_space()
    first = [space.sample(7, i) for i in range(6)]
    again = [space.sample(7, i) for i in range(6)]
    assert first == again
    # trial i does not depend on how many trials are drawn or in which order
    assert [space.sample(7, i) for i in reversed(range(6))][::-1] == first
    other_seed = [space.sample(8, i) for i in range(6)]
    assert other_seed != first
    assert len({json.dumps(p, sort_keys=True) for p in first}) == 6


def test_samples_are_plain_python_values_inside_their_ranges() -> None:
    space = build_space()
    samples = [space.sample(0, i) for i in range(300)]
    for params in samples:
        assert type(params["lr"]) is float and 1e-3 <= params["lr"] <= 0.3
        assert type(params["batch_size"]) is int and params["batch_size"] in (32, 64, 128, 256)
        assert type(params["nesterov"]) is bool
        assert type(params["momentum"]) is float and 0.5 <= params["momentum"] <= 0.95
        assert params["weight_decay"] == 0.0 or 1e-6 <= params["weight_decay"] <= 1e-3
    # log-uniform: about half of the draws below the geometric mean of the bounds
    below = sum(p["lr"] < math.sqrt(1e-3 * 0.3) for p in samples)
    assert 110 < below < 190
    zeros = sum(p["weight_decay"] == 0.0 for p in samples)
    assert 45 < zeros < 110  # zero with probability 0.25
    assert set(Counter(p["schedule"] for p in samples)) == {
        "constant",
        "step",
        "exponential",
        "cosine",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=1e-3:0.3:log", Range(1e-3, 0.3, log=True)),
        ("momentum=0.5:0.99", Range(0.5, 0.99)),
        ("weight_decay=1e-6:1e-2:log:zero=0.2", Range(1e-6, 1e-2, log=True, zero=0.2)),
        ("batch_size=64,128,256", Choice((64, 128, 256))),
        ("hidden=300", Choice((300,))),
        ("hidden=100:800:log", Range(100, 800, log=True, integer=True)),
        ("nesterov=on,off", Choice((True, False))),
        ("schedule=cosine", Choice(("cosine",))),
        ("augment=none,shift,affine,elastic", Choice(("none", "shift", "affine", "elastic"))),
    ],
)
def test_parse_overrides(text: str, expected: Range | Choice) -> None:
    name = text.partition("=")[0]
    assert parse_overrides([text]) == {name: expected}


def test_integer_ranges_draw_integers_within_bounds() -> None:
    space = build_space({"hidden": "100:800:log", "step_size": "1:3"})
    draws = [space.sample(1, i) for i in range(100)]
    assert all(type(d["hidden"]) is int and 100 <= d["hidden"] <= 800 for d in draws)
    assert {d["step_size"] for d in draws} == {1, 2, 3}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lr": "0.3:1e-3:log"}, "'lr'.*low < high"),
        ({"lr": "0:0.3:log"}, "'lr'.*low > 0"),
        ({"lr": "0,0.1"}, "'lr'.*lr=0.0 must be > 0"),
        ({"momentum": "0.5:1.0"}, "'momentum'.*must be in \\[0, 1\\)"),
        ({"batch_size": "0,64"}, "'batch_size'.*batch_size=0 must be in \\[1, 65536\\]"),
        ({"batch_size": "16.5:64"}, "'batch_size' is an integer"),
        ({"hidden": "3.5"}, "'hidden'.*must be an integer"),
        ({"schedule": "linear"}, "'schedule'.*'linear' is not allowed"),
        ({"nesterov": "maybe"}, "'nesterov'.*'maybe' is not true/false"),
        ({"weight_decay": "1e-6:1e-3:log:zero=1.5"}, "'weight_decay'.*zero=1.5"),
        ({"lr": "1e-3:0.1:cubic"}, "'lr'.*unknown range option 'cubic'"),
        ({"lr": "a:b"}, "'lr'.*'a' is not a number"),
        ({"augment": "0:1"}, "'augment'.*list of values, not a range"),
        ({"augment": []}, "'augment'.*no values"),
        ({"decay": {"low": 0.5}}, "'decay'.*needs 'low' and 'high'"),
        ({"9lives": "a,b"}, "'9lives' must be an identifier"),
    ],
)
def test_impossible_ranges_raise_naming_the_parameter(overrides: dict, message: str) -> None:
    with pytest.raises(SearchSpaceError, match=message):
        build_space(overrides)


def test_override_syntax_errors() -> None:
    with pytest.raises(SearchSpaceError, match="NAME=SPEC"):
        parse_overrides(["lr"])
    with pytest.raises(SearchSpaceError, match="'lr' is overridden twice"):
        parse_overrides(["lr=0.1", "lr=0.2"])
    assert isinstance(SearchSpaceError("x"), ValueError)


def test_raw_values_as_from_yaml_or_a_flow_parameter() -> None:
    space = build_space(
        {
            "lr": {"low": 0.01, "high": 0.3, "log": True},
            "batch_size": [64, 128],
            "nesterov": True,
            "hidden": {"values": [128, 300]},
            "augment": ["none", "shift"],
        }
    )
    assert space.specs["lr"] == Range(0.01, 0.3, log=True)
    assert space.specs["batch_size"] == Choice((64, 128))
    assert space.specs["nesterov"] == Choice((True,))
    assert space.specs["hidden"] == Choice((128, 300))
    assert space.extras == ("augment",)
    assert {space.sample(3, i)["augment"] for i in range(30)} == {"none", "shift"}


def test_space_files_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text("lr: 1e-3:0.1:log\nbatch_size: [32, 64]\nschedule: cosine\n")
    json_file = tmp_path / "space.json"
    json_file.write_text(json.dumps({"momentum": {"low": 0.8, "high": 0.9}, "hidden": 500}))
    assert load_space_file(yaml_file) == {
        "lr": Range(1e-3, 0.1, log=True),
        "batch_size": Choice((32, 64)),
        "schedule": Choice(("cosine",)),
    }
    assert load_space_file(json_file) == {"momentum": Range(0.8, 0.9), "hidden": Choice((500,))}

    bad = tmp_path / "bad.yaml"
    bad.write_text("momentum: 0.5:2\n")
    with pytest.raises(SearchSpaceError, match=r"bad\.yaml.*'momentum'"):
        load_space_file(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(SearchSpaceError, match=r"list\.json.*mapping"):
        load_space_file(listing)
    with pytest.raises(SearchSpaceError, match=r"missing\.yaml.*cannot read"):
        load_space_file(tmp_path / "missing.yaml")


def test_describe_round_trips_through_the_parser() -> None:
    space = SearchSpace(dict(DEFAULT_SPACE))
    for name, text in space.describe().items():
        assert parse_value(name, text) == space.specs[name], name
    assert set(DEFAULT_SPACE) <= set(PARAMETERS)


def test_trial_streams_are_the_children_of_seed_sequence_spawn() -> None:
    children = np.random.SeedSequence(11).spawn(4)
    for index, child in enumerate(children):
        sampling, training = trial_seeds(11, index)
        expected = child.spawn(2)
        assert sampling.generate_state(4).tolist() == expected[0].generate_state(4).tolist()
        assert training.generate_state(4).tolist() == expected[1].generate_state(4).tolist()
    assert trial_seeds(11, 0)[0].generate_state(4).tolist() != (
        trial_seeds(11, 0)[1].generate_state(4).tolist()
    )


def test_a_trial_draws_from_its_own_numpy_generator_in_name_order() -> None:
    space = SearchSpace({"lr": Range(1e-3, 0.3, log=True), "batch_size": Choice((32, 64))})
    rng = np.random.default_rng(trial_seeds(3, 5)[0])
    batch = (32, 64)[int(rng.integers(2))]
    lr = math.exp(rng.uniform(math.log(1e-3), math.log(0.3)))
    assert space.sample(3, 5) == {"batch_size": batch, "lr": lr}


def test_same_seed_same_draws_in_another_process_without_scipy() -> None:
    code = (
        "import json, sys; from tasks.tuning.overrides import build_space; "
        "s = build_space({'hidden': '100:800:log'}); "
        "print(json.dumps([s.sample(7, i) for i in range(5)])); "
        "print(sorted(m for m in ('scipy', 'sklearn') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    space = build_space({"hidden": "100:800:log"})
    assert json.loads(out[0]) == [space.sample(7, i) for i in range(5)]
    assert out[1] == "[]"  # drawing needs neither scipy nor scikit-learn
