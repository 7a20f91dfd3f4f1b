"""Faults leave nothing behind: a failed output promotes nothing, diverged models are not
registered, identical re-runs add no version, changed cached arrays are prepared anew.

Each test runs ``mnist-flow train`` in-process (``flows.cli.main``) against the session's
test server, on 1,000 MNIST training images for one epoch.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

import tasks.outputs.rundir as rundir_module
from flows.cli import main
from tasks.data.arrays import file_sha256
from tasks.registry.store import Registry


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the module: the arrays are prepared once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cli(prefect_harness, mnist_dir, tmp_path, capsys, shared_cache):
    """Run ``mnist-flow train`` tiny; return ``(exit status, error lines)``.

    The cache is the module's, except with ``cache=`` (a test that changes it).
    """

    def run(*extra: str, out: str = "run", cache: Path = shared_cache) -> tuple[int, list[str]]:
        argv = ["train", "--data-dir", str(mnist_dir), "--cache-dir", str(cache)]
        argv += ["--registry", str(tmp_path / "registry"), "--out", str(tmp_path / out)]
        argv += ["--train-size", "1000", "--epochs", "1", "--hidden", "32", "--augment", "none"]
        capsys.readouterr()
        code = main([*argv, *extra])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if line.startswith("mnist-flow: error:")]

    return run


def test_a_failed_output_registers_nothing_and_leaves_no_run_folder(
    cli, tmp_path, monkeypatch
) -> None:
    """Disk full while writing a plot: one line naming the file, nothing registered."""
    real_write = rundir_module.write_bytes_atomic

    def full_disk(path, data, **kwargs):
        if Path(path).name == "confusion_matrix.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(rundir_module, "write_bytes_atomic", full_disk)
    code, errors = cli()
    assert code == 1 and len(errors) == 1, errors
    assert f"{tmp_path / 'run' / 'confusion_matrix.png'}: No space left on device" in errors[0]
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".run")] == []  # no staging
    registry = Registry(tmp_path / "registry")
    assert registry.list() == [] and registry.champion() is None

    monkeypatch.setattr(rundir_module, "write_bytes_atomic", real_write)
    assert cli() == (0, [])  # the same run with room on the disk: registered and promoted
    assert {"model.npz", "model.json", "metrics.json", "report.md"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }
    assert [(v.version, v.is_champion) for v in registry.list()] == [("v0001", True)]

    assert cli(out="again") == (0, [])  # identical re-run: the model is registered once
    assert [v.version for v in registry.list()] == ["v0001"]
    decision = json.loads((tmp_path / "again" / "metrics.json").read_text())["registry"]
    assert decision["already_registered"] and decision["challenger_version"] == "v0001"
    assert "same weights as v0001" in decision["reason"]


def test_a_changed_cached_array_is_prepared_again(cli, tmp_path) -> None:
    """The issue's case: noise over the cached training images, then a re-run with another --lr."""
    assert cli(cache=tmp_path / "cache") == (0, [])
    (x_train,) = (tmp_path / "cache" / "prepared").glob("*/train_images.npy")
    recorded = json.loads((x_train.parent / "arrays.json").read_text())["sha256"][x_train.name]
    original = np.load(x_train)
    np.save(x_train, np.random.default_rng(0).integers(0, 256, original.shape, dtype=np.uint8))
    assert file_sha256(x_train) != recorded
    assert cli("--lr", "0.03", out="rerun", cache=tmp_path / "cache") == (0, [])
    np.testing.assert_array_equal(np.load(x_train), original)  # prepared anew
    metrics = json.loads((tmp_path / "rerun" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.6  # noise would leave it near 0.1


def test_a_diverged_model_is_reported_and_not_registered(cli, tmp_path) -> None:
    """``--lr 10``: finite weights, exploded loss; the report says so, the registry is empty."""
    code, errors = cli("--lr", "10", "--recipe", "plain")
    assert code == 1 and len(errors) == 1, errors
    assert "diverged" in errors[0] and "not registered" in errors[0]
    assert str(tmp_path / "run") in errors[0]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["registry"] is None and "more than 10 times ln(10)" in metrics["not_registered"]
    assert metrics["test_accuracy"] < 0.3
    assert "Not registered: the model diverged" in (tmp_path / "run" / "report.md").read_text()
    assert Registry(tmp_path / "registry").list() == []


def test_an_unwritable_out_is_refused_before_any_work(cli, tmp_path) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, errors = cli(out="file/run")
    assert code == 1 and len(errors) == 1, errors
    assert f"--out {tmp_path / 'file' / 'run'}: cannot create the run directory" in errors[0]
    assert cli(out="file/run", cache=tmp_path / "cache")[0] == 1
    assert not (tmp_path / "cache").exists()  # refused before fetching anything
