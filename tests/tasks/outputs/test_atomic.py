"""tasks.outputs.atomic re-exports nn.atomic: one atomic writer, not a second copy."""

from __future__ import annotations

import nn.atomic
from tasks.outputs import atomic


def test_every_writer_is_nn_atomic_itself():
    assert atomic.__all__  # the names the pipeline imports from here
    for name in atomic.__all__:
        assert getattr(atomic, name) is getattr(nn.atomic, name), name
