"""Learning-rate schedules: values computed by hand."""

from __future__ import annotations

import itertools
import math

import pytest

from nn.errors import ConfigError
from nn.schedules import constant, cosine, exponential, learning_rate, step_decay, warmup


def test_pure_schedules_by_hand():
    assert [constant(e, lr=0.1) for e in range(3)] == [0.1, 0.1, 0.1]
    assert [step_decay(e, lr=0.1, decay=0.5, step_size=2) for e in range(5)] == [
        0.1,
        0.1,
        0.1 * 0.5,
        0.1 * 0.5,
        0.1 * 0.25,
    ]
    assert [exponential(e, lr=0.2, decay=0.9) for e in range(3)] == [0.2, 0.2 * 0.9, 0.2 * 0.9**2]
    assert [cosine(e, lr=1.0, epochs=4) for e in range(4)] == [
        1.0,
        0.5 * (1 + math.cos(math.pi / 4)),
        0.5 * (1 + math.cos(math.pi / 2)),
        0.5 * (1 + math.cos(3 * math.pi / 4)),
    ]
    assert [warmup(e, lr=0.3, warmup_epochs=2) for e in range(2)] == [0.3 * 1 / 3, 0.3 * 2 / 3]


def test_learning_rate_runs_the_schedule_after_warmup():
    lrs = [learning_rate("cosine", e, lr=0.1, epochs=6, warmup_epochs=2) for e in range(6)]
    assert lrs[:2] == [0.1 / 3, 0.1 * 2 / 3]
    assert lrs[2:] == [cosine(e, lr=0.1, epochs=4) for e in range(4)]
    assert lrs[2] == 0.1 and all(a > b for a, b in itertools.pairwise(lrs[2:]))
    steps = [learning_rate("step", e, lr=1.0, epochs=6, decay=0.1, step_size=3) for e in range(6)]
    assert steps == [1.0, 1.0, 1.0, 0.1, 0.1, 0.1]
    assert learning_rate("exponential", 3, lr=1.0, epochs=5, decay=0.5) == 0.125
    assert learning_rate("constant", 4, lr=0.05, epochs=5, warmup_epochs=1) == 0.05


def test_unknown_schedule_names_the_field():
    with pytest.raises(ConfigError, match="schedule='linear'"):
        learning_rate("linear", 0, lr=0.1, epochs=3)
