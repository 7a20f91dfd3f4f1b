"""The report: markdown content, files on disk, and the ``mnist-report`` artifact in Prefect."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from prefect import flow

from tasks.data.idx import read_idx
from tasks.outputs import embed
from tasks.outputs.embed import MAX_EMBED_CHARS, compact_png
from tasks.outputs.plots import figure_to_png, plot_confusion
from tasks.outputs.report import PLOTS, best_trial, render_report
from tasks.report import REPORT_ARTIFACT_KEY, write_report
from tasks.scoring.metrics import class_names, evaluation_metrics, select_misclassified

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(mnist_dir: Path) -> dict:
    """Metrics and misclassified images of a nearest-centroid classifier on real MNIST."""
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:1500].astype(np.float32) / 255
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:1500].astype(np.int64)
    flat = images.reshape(len(images), -1)
    centroids = np.stack([flat[:500][labels[:500] == c].mean(axis=0) for c in range(10)])
    test, y = flat[500:], labels[500:]
    z = -((test[:, None, :] - centroids[None]) ** 2).sum(axis=2) / 8.0
    proba = np.exp(z - z.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    names = class_names("mnist", 10)
    metrics = evaluation_metrics(y, proba, names)
    errors = select_misclassified(images[500:], y, proba, limit=16)
    return {"metrics": metrics, "errors": errors, "names": names}


def make_trial(i: int, lr: float, batch: int, acc: float | None, status: str = "ok") -> dict:
    curve = [] if acc is None else [acc - 0.02, acc - 0.005, acc]
    return {
        "trial": i,
        "params": {
            "lr": lr,
            "batch_size": batch,
            "momentum": 0.9,
            "nesterov": i % 2 == 0,
            "weight_decay": 1e-4,
            "schedule": "step",
            "decay": 0.5,
            "hidden": [256],
        },
        "seed": 100 + i,
        "status": status,
        "error": None if status == "ok" else "NonFiniteError: loss is NaN | epoch 2",
        "val_accuracy": curve,
        "val_loss": [0.4, 0.3, 0.25][: len(curve)],
        "best_val_accuracy": acc,
        "epochs": len(curve),
        "seconds": 12.34,
        "cached": i == 1,
    }


TRIALS = [
    make_trial(0, 0.05, 128, 0.951),
    make_trial(1, 0.2, 64, 0.9634),
    make_trial(2, 4.0, 32, None, status="diverged"),
]
HISTORY = [
    {
        "epoch": e,
        "train_loss": 0.5 / e,
        "train_accuracy": 0.85 + 0.02 * e,
        "val_loss": 0.55 / e,
        "val_accuracy": 0.84 + 0.02 * e,
        "lr": 0.1,
        "seconds": 2.0,
    }
    for e in range(1, 5)
]


def test_best_trial_ignores_unfinished() -> None:
    assert best_trial(TRIALS)["trial"] == 1
    assert best_trial([TRIALS[2]]) is None


def test_render_report_content(evaluated) -> None:
    metrics = {
        **evaluated["metrics"],
        "dataset": {"name": "mnist", "checksums": {"test_images": "ab12"}},
        "model_path": "runs/x/model.npz",
        "best_epoch": 7,
        "history": HISTORY,
        "params": {"train": {"epochs": 12, "lr": 0.2}, "data": {"val_size": 5000}},
    }
    images = {name: filename for name, (filename, _) in PLOTS.items()}
    md = render_report(
        metrics,
        run_dir="runs/2026-01-01",
        images=images,
        trials=TRIALS,
        decision_markdown="**Promoted**: challenger beats champion by 0.4 points.",
    )
    accuracy = f"{100 * metrics['test_accuracy']:.2f}%"
    assert f"| test accuracy | {accuracy} |" in md
    assert f"| test loss (cross-entropy) | {metrics['test_loss']:.4f} |" in md
    assert "Run directory: `runs/2026-01-01`" in md
    details = md.split("## Run details")[1].split("##")[0]
    assert "| dataset | mnist |" in details and "| model path | runs/x/model.npz |" in details
    assert "best_epoch" not in details and "history" not in details  # in the summary
    assert "## Promotion decision" in md and "**Promoted**: challenger" in md
    # one parameter table: the best finished trial's values beside the final model's
    assert "## Best parameters" not in md and md.count("| parameter |") == 1
    params = md.split("## Parameters")[1].split("##")[0]
    assert "Trial 1 reached 96.34% validation accuracy." in params
    assert "| parameter | best trial | final model |" in params
    assert "| lr | 0.2 | same |" in params and "| batch_size | 64 | — |" in params
    assert "| epochs | 3 | 12 |" in params and "val_size" not in params
    final = md.split("## Final training")[1].split("##")[0]
    assert "Ran 4 of 12 epochs; lowest validation loss at epoch 7." in final
    assert "| parameter |" not in final
    search = md.split("### Trials")[1].split("##")[0]
    rows = [line for line in search.splitlines() if re.match(r"\| (\*\*)?\d", line)]
    assert len(rows) == 3
    assert "Every trial: momentum 0.9, weight decay 0.0001, schedule step ×0.5." in search
    assert rows[1] == "| **1** (best) | 0.2 | 64 | False | ok (cached) | 96.34% | 1-3 of 3 | 12.3 |"
    assert "diverged: NonFiniteError: loss is NaN \\| epoch 2 | — |" in rows[2]
    assert "2 of 3 trials finished." in md
    for filename, caption in PLOTS.values():
        assert f"![{caption}]({filename})" in md
    per_class = md.split("### Per-class metrics")[1].split("##")[0].strip().splitlines()
    assert len(per_class) == 2 + 10  # header, separator, one row per class
    c = metrics["per_class"][7]
    row = f"| 7 | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
    assert per_class[2 + 7] == row


def test_trial_table_with_halving_rounds() -> None:
    rounds = [
        {**make_trial(0, 0.05, 128, 0.90), "rung": 0},
        {**make_trial(1, 0.2, 64, 0.93), "rung": 0},
        {**make_trial(1, 0.2, 64, 0.97), "rung": 1},
    ]
    md = render_report({"test_accuracy": 0.9}, run_dir="r", images={}, trials=rounds)
    table = md.split("### Trials")[1].strip().splitlines()[2:]
    assert table[0].startswith("| trial | round | lr | batch | Nesterov | status |")
    assert [row.split(" | ")[:2] for row in table[2:]] == [
        ["| 0", "1"],
        ["| 1", "1"],
        ["| **1** (best)", "2"],
    ]
    assert "Trial 1 reached 97.00% validation accuracy." in md


def test_render_report_without_search(evaluated) -> None:
    md = render_report(evaluated["metrics"], run_dir="r", images={"confusion": "cm.png"})
    assert "## Search" not in md and "## Parameters" not in md
    assert "## Promotion decision" not in md
    assert "![Confusion matrix on the test set](cm.png)" in md
    assert "curves" not in md
    explicit = render_report(evaluated["metrics"], run_dir="r", images={}, best_params={"lr": 0.3})
    assert "## Parameters" in explicit and "| lr | 0.3 |" in explicit


def test_parameters_to_four_significant_figures() -> None:
    best = {**TRIALS[1]["params"], "weight_decay": 1.5008394021202372e-05}
    best["decay"] = 0.6814537414440667
    train = {
        **best,
        "hidden": [256],  # the trial's one layer as the final model's list
        "lr": 0.123456789,
        "epochs": 20,
        "patience": 3,
        "step_size": None,  # unset on both sides: no row
    }
    metrics = {
        "test_accuracy": 0.95,
        "history": HISTORY,
        "best_epoch": 2,
        "stopped_early": True,
        "params": {"train": train},
    }
    trials = [{**TRIALS[1], "params": best}]
    md = render_report(metrics, run_dir="r", images={}, trials=trials)
    params = md.split("## Parameters")[1].split("##")[0]
    assert "| weight_decay | 1.501e-05 | same |" in params
    assert "| decay | 0.6815 | same |" in params
    assert "| lr | 0.2 | 0.1235 |" in params
    assert "| hidden | [256] | same |" in params
    assert "| epochs | 3 | 20 |" in params and "| patience | — | 3 |" in params
    assert "step_size" not in params
    assert "0.68145" not in md and "1.5008" not in md and "0.12345" not in md
    final = md.split("## Final training")[1]
    summary = "Ran 4 of 20 epochs (stopped early, patience 3); lowest validation loss at epoch 2"
    assert summary + ", whose weights the model keeps." in final
    only_final = render_report(metrics, run_dir="r", images={})
    table = only_final.split("## Parameters")[1].split("##")[0]
    assert "| parameter | value |" in table and "| decay | 0.6815 |" in table


def read_report_artifacts() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[REPORT_ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
        )


def test_write_report_files_and_artifact(prefect_harness, evaluated, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt  # here: matplotlib only where a test draws

    errors = evaluated["errors"]
    before = len(read_report_artifacts())
    figures_before = plt.get_fignums()
    run_dir = tmp_path / "run"

    @flow
    def report_flow() -> str:
        return write_report(
            str(run_dir),
            evaluated["metrics"],
            images_for_errors=errors.images,
            y_true=errors.y_true,
            y_pred=errors.y_pred,
            class_names=evaluated["names"],
            trials=TRIALS,
            decision_markdown="Kept the champion.",
            history=HISTORY,
        )

    path = report_flow()
    assert path == str(run_dir / "report.md")
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == sorted(["report.md", *(f for f, _ in PLOTS.values())])  # no temp files
    for filename, _ in PLOTS.values():
        data = (run_dir / filename).read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 300 and height >= 150
    md = Path(path).read_text()
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (run_dir / link).is_file()
    assert "data:image" not in md
    assert plt.get_fignums() == figures_before

    artifacts = read_report_artifacts()
    assert len(artifacts) == before + 1
    latest = artifacts[0]
    assert latest.type == "markdown" and latest.key == REPORT_ARTIFACT_KEY
    ui = latest.data
    assert str(run_dir) in ui and "Kept the champion." in ui
    files = ui.split("### Files")[1].strip().splitlines()
    listed = ["report.md", *(f for f, _ in PLOTS.values())]
    assert sorted(files) == sorted(f"- `{run_dir / name}`" for name in listed)  # no stray commas
    assert f"{100 * evaluated['metrics']['test_accuracy']:.2f}%" in ui
    embedded = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", ui)
    assert len(embedded) == len(PLOTS)
    for b64 in embedded:
        assert len(b64) <= MAX_EMBED_CHARS
        assert base64.b64decode(b64)[:8] == PNG_SIGNATURE


def _png_size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


def test_compact_png_fits_the_budget(evaluated) -> None:
    fig = plot_confusion(evaluated["metrics"]["confusion_matrix"], evaluated["names"])
    png = figure_to_png(fig, 100)
    width, height = _png_size(png)
    small = compact_png(png, 100)  # the default budget: the embedding resolution fits
    assert small is not None and small[:8] == PNG_SIGNATURE
    assert len(base64.b64encode(small)) <= MAX_EMBED_CHARS
    assert _png_size(small) == (round(width * 0.72), round(height * 0.72))
    smaller = compact_png(png, 100, max_chars=len(base64.b64encode(small)) // 2)
    assert smaller is not None and len(smaller) <= len(small) // 2
    assert _png_size(smaller)[0] < _png_size(small)[0]  # a lower resolution made it fit
    assert compact_png(png, 100, max_chars=500) is None


def test_write_report_minimal_keeps_key(
    prefect_harness, evaluated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embed, "MAX_EMBED_CHARS", 500)  # nothing fits: a note instead
    before = len(read_report_artifacts())
    path = flow(lambda: write_report(str(tmp_path), evaluated["metrics"]), name="minimal")()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_matrix.png", "report.md"]
    artifacts = read_report_artifacts()
    assert len(artifacts) == before + 1  # a new version under the same key
    ui = artifacts[0].data
    assert str(tmp_path) in ui and "data:image" not in ui
    assert f"_Too large to show here: `{tmp_path / 'confusion_matrix.png'}`._" in ui
    assert Path(path).read_text().count("![") == 1


def test_report_says_how_many_images_trained(evaluated) -> None:
    """Trained on every image (the recipe's default) or with a validation split: it says so."""
    history = [{"epoch": e, "train_loss": 0.5, "val_loss": None} for e in (1, 2)]
    base = {**evaluated["metrics"], "history": history, "best_epoch": 2}
    base["params"] = {"train": {"epochs": 2}}
    all_images = {**base, "dataset": {"n_train": 60000, "n_val": 0}}
    text = render_report(all_images, run_dir="run", images={})
    assert "Ran 2 of 2 epochs on all 60,000 training images (no validation split)." in text
    assert "validation loss at epoch" not in text
    split = {**base, "dataset": {"n_train": 50000, "n_val": 10000}}
    text = render_report(split, run_dir="run", images={})
    assert "on 50,000 training images (10,000 held out for validation)" in text


def test_report_lists_the_parameters_used_and_where_trials_ran(evaluated) -> None:
    used = [
        {"parameter": "options.margin", "value": 0.001, "source": "deployment"},
        {"parameter": "search.dask_address", "value": "tcp://10.0.0.5:8786", "source": "given"},
    ]
    where = "dask at tcp://10.0.0.5:8786: 4 workers, 4 threads"
    placement = {"placement": {"where": where}}
    metrics = {**evaluated["metrics"], "parameters_used": used, "search": placement}
    trials = [make_trial(0, 0.01, 64, 0.9), make_trial(1, 0.1, 32, 0.8)]
    md = render_report(metrics, run_dir="/tmp/run", images={}, trials=trials)
    used_section = md.split("## Parameters used")[1].split("\n## ")[0]
    assert "| `options.margin` | 0.001 | deployment |" in used_section
    assert "| `search.dask_address` | tcp://10.0.0.5:8786 | given |" in used_section
    assert f"2 of 2 trials finished. Trials ran on {where}." in md
    assert "parameters_used" not in md  # not repeated raw under "Run details"


@pytest.mark.slow  # draws every plot twice
def test_plots_are_drawn_once_and_found_again_in_the_cache(evaluated, tmp_path, monkeypatch):
    from tasks.outputs import figures, report
    from tasks.outputs.report import write_report_files

    errors = evaluated["errors"]
    args = {
        "images_for_errors": errors.images,
        "y_true": errors.y_true,
        "y_pred": errors.y_pred,
        "class_names": evaluated["names"],
        "trials": TRIALS,
        "history": HISTORY,
        "plot_cache": tmp_path / "plots",
    }
    first = write_report_files(str(tmp_path / "a"), evaluated["metrics"], **args)
    drawn = []
    build = figures.build_plots

    def counting(*a, **k):  # records the name of every plot drawn
        specs = build(*a, **k)
        return {
            name: figures.PlotSpec(spec.inputs, lambda n=name, d=spec.draw: drawn.append(n) or d())
            for name, spec in specs.items()
        }

    monkeypatch.setattr(report, "build_plots", counting)
    again = write_report_files(str(tmp_path / "b"), evaluated["metrics"], **args)
    assert drawn == []  # every plot came from the cache
    assert again.ui_markdown.replace(str(tmp_path / "b"), "") == first.ui_markdown.replace(
        str(tmp_path / "a"), ""
    )
    for filename in first.plots:
        assert (tmp_path / "b" / filename).read_bytes() == (tmp_path / "a" / filename).read_bytes()
    # other data or other code: drawn again
    changed = write_report_files(
        str(tmp_path / "c"), evaluated["metrics"], **{**args, "history": HISTORY[:-1]}
    )
    assert drawn == ["curves"] and changed.plots == first.plots
    monkeypatch.setattr(figures, "CODE_VERSION", figures.CODE_VERSION + 1)
    write_report_files(str(tmp_path / "d"), evaluated["metrics"], **args)
    assert len(drawn) == 1 + len(first.plots) == 8


RECIPE = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "schedule": "cosine",
          "warmup_epochs": 1, "decay": 0.5, "step_size": 5, "beta1": 0.9, "beta2": 0.999,
          "epsilon": 1e-8, "epochs": 9}  # fmt: skip


def test_trial_table_fits_a_window_with_the_recipe_settings_named_once() -> None:
    trials = [
        {**make_trial(i, lr, 128 * (1 + i % 2), 0.95 + i / 1000), "params": {"lr": lr,
         "batch_size": 128 * (1 + i % 2), "weight_decay": 10 ** -(3 + i % 3)}}
        for i, lr in enumerate([0.05, 0.0213, 0.1187, 0.0371, 0.0712])
    ]  # fmt: skip
    metrics = {"test_accuracy": 0.98, "search": {"choice": {"settings": RECIPE}}}
    md = render_report(metrics, run_dir="r", images={}, trials=trials)
    section = md.split("### Trials")[1]
    assert "Every trial: momentum 0.9, Nesterov True, schedule cosine, warm-up 1." in section
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert table[0] == "| trial | lr | batch | weight decay | status | val acc | epochs | s |"
    assert len(table) == 2 + 5 and "—" not in "".join(table)
    assert max(len(line) for line in table) <= 100  # about 800 px: room in a 1400 px window
    params = md.split("## Parameters")[1].split("##")[0]
    assert "| momentum | 0.9 |" in params and "| nesterov | True |" in params  # not "—"


def test_parameters_that_do_not_apply_are_left_out() -> None:
    final = {**RECIPE, "lr": 0.05}
    md = render_report({"params": {"train": final}}, run_dir="r", images={})
    params = md.split("## Parameters")[1].split("##")[0]
    assert "| momentum | 0.9 |" in params and "| warmup_epochs | 1 |" in params
    for unused in ("beta1", "beta2", "epsilon", "step_size", "decay"):
        assert f"| {unused} |" not in params, unused
    step = {**final, "schedule": "step"}
    params = render_report({"params": {"train": step}}, run_dir="r", images={})
    assert "| step_size | 5 |" in params and "| decay | 0.5 |" in params
    adam = {**final, "optimizer": "adam"}
    params = render_report({"params": {"train": adam}}, run_dir="r", images={})
    assert "| beta1 | 0.9 |" in params and "momentum" not in params and "nesterov" not in params


def decision(promoted: bool, review: dict | None = None, **extra) -> dict:
    return {"promoted": promoted, "challenger_version": "v0004", "champion_version": "v0003",
            "reason": "test accuracy 0.9800 does not beat champion v0003", "review": review,
            "evaluated_on": "the test set", **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("registry", "not_registered", "said"),
    [
        (decision(True), None, "v0004 registered and promoted to champion."),
        (decision(True, {"approved": True, "by": "ada", "reason": "ok"}), None,
         "v0004 registered and promoted to champion, approved by ada."),
        (decision(False), None, "v0004 registered; the champion v0003 stays (test accuracy"),
        (decision(False, {"approved": False, "by": "ada", "reason": "too few 7s"}), None,
         "v0004 registered; its promotion was rejected by ada: too few 7s."),
        (None, "test accuracy 0.1000 is at chance level (0.1000)",
         "Not registered: the test accuracy 0.1000 is at chance level (0.1000)."),
    ],
)  # fmt: skip
def test_the_report_leads_with_the_outcome(registry, not_registered, said) -> None:
    metrics = {"test_accuracy": 0.98, "registry": registry, "not_registered": not_registered,
               "seed": 3, "kind": "train"}  # fmt: skip
    md = render_report(metrics, run_dir="r", images={})
    assert f"**Outcome: {said}" in md.split("## Headline metrics")[0]  # first, before figures
    details = md.split("## Run details")[1]
    assert "| seed | 3 |" in details and "| kind | train |" in details
    assert "not_registered" not in md and "not registered |" not in details
    assert "promoted" not in details and "registry" not in details


def test_with_added_data_the_figure_that_decided_leads_and_names_its_set() -> None:
    same_set = {"accuracy": 0.8659, "n": 10300, "n_test": 10000, "n_heldout": 300}
    registry = decision(True, evaluated_on="the same 10,300 images (test set and held-out "
                        "added data)", challenger_accuracy=0.8659)  # fmt: skip
    metrics = {"test_accuracy": 0.8656, "n_test": 10000, "eval_set": same_set,
               "registry": registry}  # fmt: skip
    md = render_report(metrics, run_dir="r", images={})
    rows = md.split("## Headline metrics")[1].split("##")[0].splitlines()
    assert rows[4] == (
        "| accuracy on test set + 300 held-out added images (decided the promotion) | 86.59% |"
    )
    assert rows[5] == "| accuracy on the test set alone (10000 images) | 86.56% |"
    assert "test accuracy |" not in md  # one label per figure, never two "test accuracy"
