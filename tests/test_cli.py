"""The ``mnist-flow`` command line: parsing in-process, real runs as subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import build_parser, main
from tests.prefect_db import prefect_home

SUBCOMMANDS = ["run", "train", "evaluate", "models", "predict", "data", "alerts", "cache"]


def _help(model, name: str, shown: str | None = None) -> str:
    """The help of the option of ``model``'s field ``name``, ending with its default."""
    from flows.params import unset_text

    field = model.model_fields[name]
    default = field.get_default(call_default_factory=True)
    shown = shown or (unset_text(field) if default is None else default)
    return f"{field.description} (default: {shown})"


def test_data_add_help_names_the_store_and_its_default(capsys):
    from flows.params import DataParams

    with pytest.raises(SystemExit):
        build_parser().parse_args(["data", "add", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert _help(DataParams, "data_store") in text and "--skip-bad" in text


def run_cli(
    args: list[str],
    tmp_path: Path,
    timeout: float = 180,
    api_url: str | None = None,
    columns: int = 80,
) -> subprocess.CompletedProcess:
    """Run ``python -m flows.cli ARGS`` with its own Prefect home, cache and registry.

    With ``api_url`` (the test harness's server) the process does not start a server.
    """
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home(tmp_path / "prefect-home")),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MNIST_FLOW_CACHE": str(tmp_path / "cache"),
        "MNIST_FLOW_REGISTRY": str(tmp_path / "registry"),
        "COLUMNS": str(columns),
    }
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
        cwd=tmp_path,
    )


@pytest.fixture
def api_url(prefect_harness) -> str:
    """The URL of the session's test server, for command-line subprocesses."""
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("mnist-flow: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.mark.parametrize("command", ["run", "train", "evaluate"])
def test_only_training_commands_take_the_added_data(command, capsys):
    """evaluate scores on the test set: an option it would ignore is not offered."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    offered = "--data-version" in capsys.readouterr().out
    assert offered == (command != "evaluate")


def test_main_without_command_prints_help(capsys):
    assert main([]) == 0
    assert "mnist-flow" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_help_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: mnist-flow" in proc.stdout
    for name in SUBCOMMANDS:
        assert name in proc.stdout


def test_the_program_collects_garbage_again_once_its_imports_are_done(tmp_path):
    """As the program, the command runs with the garbage collector on, the objects its
    imports made frozen; a caller's process keeps its collector untouched."""
    code = (
        "import gc, sys\n"
        "from flows.cli import main\n"
        "assert main(['cache', '--cache-dir', sys.argv[1]]) == 0 and gc.get_freeze_count() == 0\n"
        "code = main()\n"
        "print(code, gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "cache", "--cache-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 True True"


@pytest.mark.slow
def test_help_imports_neither_prefect_nor_matplotlib():
    """Building the parser (every ``--help``) stays quick: the flows are imported on dispatch."""
    code = (
        "import sys\n"
        "from flows.cli import build_parser\n"
        "build_parser()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'matplotlib'))\n"
        "print(heavy[:5])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS[:5])
@pytest.mark.slow
def test_every_subcommand_has_help_with_defaults(command, tmp_path):
    from flows.cli.parser import ADDED_DATA, TRAIN_DATA_DEFAULTS, flag
    from flows.params import DataParams, PipelineOptions, RunOptions, SearchParams, TrainOptions
    from tasks.settings import recipe_help

    proc = run_cli([command, "--help"], tmp_path, timeout=60, columns=400)  # no hyphen breaks
    assert proc.returncode == 0, proc.stderr
    assert f"usage: mnist-flow {command}" in proc.stdout
    text = " ".join(proc.stdout.split())
    data = [(DataParams, name) for name in DataParams.model_fields]
    run = [(RunOptions, name) for name in RunOptions.model_fields]
    shown = {
        "run": [*data, *run, *((SearchParams, n) for n in SearchParams.model_fields)]
        + [(PipelineOptions, n) for n in PipelineOptions.model_fields],
        "train": [*data, *run],
        "evaluate": [
            *((m, n) for m, n in data if n not in ADDED_DATA),
            *((RunOptions, n) for n in ("seed", "out_dir", "registry_dir")),
        ],
    }.get(command, [(RunOptions, "registry_dir")])

    for model, name in shown:  # each option with its declared help and default
        if name == "space":  # --space NAME=SPEC items, parsed apart
            continue
        default = TRAIN_DATA_DEFAULTS.get(name) if command == "train" else None
        assert f"{flag(name)} " in text and _help(model, name, default) in text, name
    if command == "run":
        assert "configurations to try, the recipe's included (default: 8)" in text
    if command == "train":
        for name in TrainOptions.model_fields:
            default = recipe_help(name) if name != "recipe" else None
            assert _help(TrainOptions, name, default) in text, name
        assert "(default: 0.05; plain recipe: 0.1)" in text
        assert "--no-standardize" in proc.stdout and "--recipe {tuned,plain}" in proc.stdout


def test_parser_reads_every_option_of_run():
    args = build_parser().parse_args(
        [
            "run",
            "--dataset",
            "fashion-mnist",
            "--trials",
            "3",
            "--trial-epochs",
            "2",
            "--final-epochs",
            "4",
            "--backend",
            "dask",
            "--halving",
            "--space",
            "lr=1e-3:0.3:log",
            "hidden=100,300",
            "--train-size",
            "1000",
            "--no-standardize",
        ]
    )
    assert (args.dataset, args.trials, args.trial_epochs, args.final_epochs) == (
        "fashion-mnist",
        3,
        2,
        4,
    )
    assert args.backend == "dask" and args.halving and not args.standardize
    assert args.space == ["lr=1e-3:0.3:log", "hidden=100,300"]
    assert args.train_size == 1000


@pytest.mark.parametrize("command", ["run", "train"])
def test_threads_is_an_option_of_the_trainings_with_one_as_default(command):
    from flows.cli.commands import _values
    from flows.params import RunOptions

    parser = build_parser()
    assert parser.parse_args([command]).threads is None  # BLAS_THREADS
    args = parser.parse_args([command, "--threads", "3"])
    assert RunOptions(**_values(args, RunOptions)).threads == 3
    help_text = " ".join(
        parser._subparsers._group_actions[0].choices[command].format_help().split()
    )
    assert "--threads THREADS BLAS threads of the (final) training" in help_text
    assert "(default: 1, the same seed gives the same metrics)" in help_text


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--lr", "-1"], "--lr"),
        (["train", "--hidden", "300,x"], "--hidden"),
        (["train", "--val-size", "-1"], "--val-size"),
        (["run", "--val-size", "0"], "--val-size"),
        (["train", "--val-size", "0", "--patience", "3"], "--patience"),
        (["train", "--augment-strength", "4"], "--augment-strength"),
        (["train", "--recipe", "plain", "--nesterov"], "--nesterov needs a momentum"),
        (["train", "--epochs", "2", "--warmup-epochs", "3"], "--warmup-epochs 3 must be fewer"),
        (["run", "--n-jobs", "0"], "--n-jobs 0 must be"),
        (["run", "--trials", "0"], "--trials"),
        (["run", "--margin", "2"], "--margin"),
        (["run", "--threads", "0"], "--threads"),
        (["train", "--threads", "-2"], "--threads"),
        (["run", "--space", "lr=5:1"], "lr"),
        (["run", "--space", "bogus=1,2"], "--space: unknown search parameter(s) bogus"),
        (["train", "--hidden", "300,,10"], "--hidden"),
        (["train", "--data-dir", "/nonexistent/mnist-flow"], "--data-dir"),
    ],
)
def test_bad_options_are_one_line_usage_errors(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mnist-flow: error:"), err
    assert needle in err[0]
    assert not re.search(r"[a-z_]=", err[0].split("--space")[0]), err[0]  # no field=value


@pytest.mark.slow
def test_bad_lr_in_a_subprocess_is_one_readable_line(tmp_path):
    proc = run_cli(["train", "--lr", "-0.5"], tmp_path, timeout=60)
    assert_one_line_error(proc, 2, "--lr")


@pytest.mark.slow
def test_unparsable_option_is_one_line(tmp_path):
    proc = run_cli(["train", "--epochs", "many"], tmp_path, timeout=60)
    assert_one_line_error(proc, 2, "--epochs")


@pytest.mark.slow
def test_missing_data_dir_exits_non_zero(tmp_path):
    proc = run_cli(["train", "--data-dir", str(tmp_path / "nowhere")], tmp_path, timeout=60)
    assert_one_line_error(proc, 2, "nowhere")


@pytest.mark.slow
def test_unreachable_mirror_is_a_runtime_error(tmp_path, api_url):
    # Port 9 (discard) on localhost refuses connections at once: no network needed. The
    # "idx" dataset has no built-in mirrors, so only this one is tried.
    proc = run_cli(
        [
            "train",
            "--dataset",
            "idx",
            "--mirror",
            "http://127.0.0.1:9/mnist",
            "--fetch-retries",
            "0",
        ],
        tmp_path,
        api_url=api_url,
    )
    assert_one_line_error(proc, 1, "127.0.0.1:9")
    assert "Pass --data-dir FOLDER" in proc.stderr and "--mirror URL" in proc.stderr


@pytest.mark.slow
def test_tiny_train_run_then_evaluate_models_and_predict(tmp_path, fashion_dir, api_url):
    out = tmp_path / "run"
    data = ["--dataset", "fashion-mnist", "--data-dir", str(fashion_dir)]
    proc = run_cli(
        [
            "train",
            *data,
            "--train-size",
            "1500",
            "--val-size",
            "500",
            "--epochs",
            "2",
            "--hidden",
            "64",
            "--out",
            str(out),
        ],
        tmp_path,
        api_url=api_url,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test accuracy:" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    recipe = metrics["params"]["train"]  # the fashion-mnist recipe, epochs and hidden aside
    assert (recipe["augment"], recipe["schedule"], recipe["warmup_epochs"]) == (
        "affine",
        "cosine",
        0,  # the recipe's one warm-up epoch is more than a quarter of 2 epochs
    )
    assert recipe["nesterov"] and recipe["weight_decay"] == 2e-4
    assert (out / "model.npz").is_file() and (out / "report.md").is_file()

    models = run_cli(["models"], tmp_path, timeout=60)
    assert models.returncode == 0, models.stderr
    assert "v0001" in models.stdout and "fashion-mnist" in models.stdout

    evaluated = run_cli(
        ["evaluate", *data, "--out", str(tmp_path / "ev")], tmp_path, api_url=api_url
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["test_accuracy"] == metrics["test_accuracy"]  # the champion, re-evaluated

    from PIL import Image

    from tasks.data.idx import read_idx

    images = read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")[:2]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"img{i}.png")
    predicted = run_cli(["predict", "--json", str(tmp_path / "img0.png")], tmp_path, timeout=60)
    assert predicted.returncode == 0, predicted.stderr
    (shown,) = json.loads(predicted.stdout)  # the champion is the model trained above
    from tasks.images.classify import load_predictor, predict_files

    (expected,) = predict_files(load_predictor(out / "model.npz"), [tmp_path / "img0.png"])
    assert shown["file"].endswith("img0.png") and shown["error"] is None
    assert shown["label"] == expected.label and 0.1 < shown["probability"] <= 1.0
    assert shown["probability"] == pytest.approx(expected.probability, abs=1e-6)
