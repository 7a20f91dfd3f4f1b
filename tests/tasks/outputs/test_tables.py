"""Tables made to fit a screen: the tuned parameters first, constant columns left out."""

from __future__ import annotations

from tasks.outputs.tables import parameters_used_lines, tidy_columns


def test_tidy_columns_orders_and_drops_what_never_changes():
    rows = [
        {"trial": 0, "epochs": 2, "status": "ok", "acc": 0.9, "hidden": 300, "lr": 0.1, "rung": 0},
        {"trial": 1, "epochs": 2, "status": "ok", "acc": 0.8, "hidden": 300, "lr": 0.01, "rung": 1},
    ]
    shown, constants = tidy_columns(rows, first=["trial", "lr", "batch", "hidden"], keep=["hidden"])
    assert [list(row) for row in shown] == [["trial", "lr", "hidden", "acc", "rung"]] * 2
    assert constants == {"epochs": 2, "status": "ok"}
    assert shown[1] == {"trial": 1, "lr": 0.01, "hidden": 300, "acc": 0.8, "rung": 1}


def test_tidy_columns_keeps_columns_some_rows_lack_and_single_rows():
    rows = [{"trial": 0, "error": ""}, {"trial": 1, "error": "", "note": "x"}]
    shown, constants = tidy_columns(rows, first=["trial"])
    assert constants == {"error": ""} and shown == [{"trial": 0}, {"trial": 1, "note": "x"}]
    single, none = tidy_columns([{"trial": 0, "epochs": 2}])
    assert single == [{"trial": 0, "epochs": 2}] and none == {}


def test_parameters_used_table():
    lines = parameters_used_lines(
        [{"parameter": "options.margin", "value": 0.001, "source": "deployment"},
         {"parameter": "data.mirror", "value": "(a|b)", "source": "default"}]
    )  # fmt: skip
    assert lines == [
        "| parameter | value | source |",
        "|---|---|---|",
        "| `options.margin` | 0.001 | deployment |",
        "| `data.mirror` | (a\\|b) | default |",
    ]
