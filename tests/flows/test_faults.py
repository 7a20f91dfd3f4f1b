"""Faults leave nothing behind: a failed output promotes nothing, diverged models are not
registered, identical re-runs add no version, changed cached arrays are prepared anew, and
no run folder names a registration that did not happen (kill -9 at each step, full disk).

Each test runs ``mnist-flow train`` (in-process with ``flows.cli.main``, or killed in a
subprocess) against the session's test server, on 1,000 MNIST training images for one epoch.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tasks.outputs.rundir as rundir_module
import tasks.registry.store as store_module
from flows.cli import main
from nn.io import load_model, weights_digest
from tasks.data.arrays import file_sha256
from tasks.registry.store import Registry
from tests.conftest import REPO_ROOT


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
        capsys.readouterr()
        code = main([*train_argv(mnist_dir, cache, tmp_path, out), *extra])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if line.startswith("mnist-flow: error:")]

    return run


def train_argv(mnist_dir: Path, cache: Path, tmp_path: Path, out: str) -> list[str]:
    argv = ["train", "--data-dir", str(mnist_dir), "--cache-dir", str(cache)]
    argv += ["--registry", str(tmp_path / "registry"), "--out", str(tmp_path / out)]
    return [*argv, "--train-size", "1000", "--epochs", "1", "--hidden", "32", "--augment", "none"]


def test_a_failed_output_leaves_no_run_folder_and_says_what_was_registered(
    cli, tmp_path, monkeypatch
) -> None:
    """Disk full while writing a plot: one line naming the file and the registration that
    came first; no run folder."""
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
    assert "; the model was registered before: v0001 promoted to champion; " in errors[0]
    assert errors[0].endswith("choose another folder (--out)")
    registry = Registry(tmp_path / "registry")
    assert [(v.version, v.is_champion) for v in registry.list()] == [("v0001", True)]

    monkeypatch.setattr(rundir_module, "write_bytes_atomic", real_write)
    assert cli() == (0, [])  # the same run with room on the disk: the folder is written
    assert {"model.npz", "model.json", "metrics.json", "report.md"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }
    assert assert_truthful(tmp_path / "run", registry)
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
    assert "it trained with lr 10, batch size " in errors[0] and "(--train-size 1000)" in errors[0]
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


KILLED = """
import os, signal, sys
import tasks.outputs.rundir as rundir
import tasks.registry.store as store

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def then_die(real):
    def wrapped(*args, **kwargs):
        real(*args, **kwargs)
        die()
    return wrapped

def publish_one_file(staging, target):  # killed after the first file moved into place
    os.replace = then_die(os.replace)
    real_publish(staging, target)

real_publish = rundir.publish
{patch}
from flows.cli import main
sys.exit(main(sys.argv[1:]))
"""
STEPS = {
    "during registration": "store.Registry._promote_locked = die",
    "after the report, before the move": "rundir.publish = die",
    "after the move": "rundir.publish = then_die(rundir.publish)",
    "during the move into an existing folder": "rundir.publish = publish_one_file",
}


def assert_truthful(run: Path, registry: Registry) -> bool:
    """The run folder is absent, states nothing, or names a version the registry holds with
    these weights and the champion it says; return whether it states an outcome."""
    if not run.exists() or not {"metrics.json", "report.md"} & {p.name for p in run.iterdir()}:
        return False
    decision = json.loads((run / "metrics.json").read_text())["registry"]
    version = registry.get(decision["challenger_version"])
    recorded = json.loads((version.path.parent / "version.json").read_text())
    assert recorded["weights_digest"] == weights_digest(load_model(run / "model.npz")[0])
    already = decision["champion_version"] == version.version  # an identical re-run
    assert version.is_champion is (decision["promoted"] or already)
    said = "is the champion already" if already else "registered"
    assert f"**Outcome: {version.version} {said}" in (run / "report.md").read_text()
    return True


def stale_staging(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".staging-" in p.name)


@pytest.mark.parametrize("step", list(STEPS))
def test_a_kill_at_any_step_leaves_no_record_the_registry_contradicts(
    cli, mnist_dir, shared_cache, tmp_path, step
) -> None:
    """kill -9 at each step of the end of a run: the folder is absent or tells the truth, and
    the next run removes the dead process's staging folder."""
    from prefect.settings import PREFECT_API_URL

    registry = Registry(tmp_path / "registry")
    argv = train_argv(mnist_dir, shared_cache, tmp_path, "run")
    if step == "during the move into an existing folder":
        assert cli() == (0, [])  # --out given again: v0001's folder gets v0002's files
        argv += ["--lr", "0.03"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    script = KILLED.format(patch=STEPS[step])
    killed = subprocess.run([sys.executable, "-c", script, *argv], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    states = assert_truthful(tmp_path / "run", registry)
    assert states is (step == "after the move")
    versions = registry.list()
    assert versions, "every kill point here comes after the registry wrote the version"
    left = stale_staging(tmp_path)
    assert bool(left) is step.startswith(("after the report", "during the move")), left
    assert cli(out="next") == (0, [])  # the next run writing beside --out
    assert stale_staging(tmp_path) == []
    assert assert_truthful(tmp_path / "next", registry)
    assert [v.version for v in registry.list()] == [v.version for v in versions]  # same weights


def test_a_full_registry_leaves_no_run_folder(cli, tmp_path, monkeypatch) -> None:
    """Disk full while the registry copies the model: one line, no version, no run folder."""

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(store_module, "copy_file", full_disk)
    code, errors = cli()
    assert code == 1 and len(errors) == 1, errors
    assert str(tmp_path / "registry") in errors[0] and "No space left on device" in errors[0]
    assert not (tmp_path / "run").exists() and stale_staging(tmp_path) == []
    assert Registry(tmp_path / "registry").list() == []
