"""A full disk: one line naming the file and the option that moves it, nothing half-written.

The writes are made to fail in-process with ``OSError(ENOSPC)`` (and numpy's
``Not enough free space`` for the prepared arrays, which carries no error number).
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

import tasks.data.prepare as prepare_module
import tasks.data.versions as versions_module
import tasks.outputs.rundir as rundir_module
from flows.cli import main
from tasks.data.versions import DataStore
from tasks.registry import history
from tasks.registry.store import Registry
from tests.tasks.registry.test_store import add, fake_model

FULL = OSError(errno.ENOSPC, "No space left on device")


def one_error_line(capsys, flow: bool = False) -> str:
    """The one error line, and no traceback (in a flow run Prefect's console handler can hit
    a stream pytest closed, "--- Logging error ---": the formatter is tested on its own)."""
    err = capsys.readouterr().err
    assert flow or "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("mnist-flow: error: ")]
    return line


def test_the_console_shows_no_traceback_for_a_full_disk():
    from flows.cli.commands import _NoUserTracebacks

    formatter = _NoUserTracebacks(logging.Formatter("%(message)s"))
    for exc in (FULL, OSError("Not enough free space to write 8 bytes"), OSError("other")):
        try:
            raise RuntimeError("task failed") from exc
        except RuntimeError:
            record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", (), sys.exc_info())
        shown = formatter.format(record)
        assert ("Traceback" in shown) == (exc.errno is None and "free space" not in str(exc))


def test_registry_disk_full_names_the_history_and_registry(tmp_path, monkeypatch, capsys):
    reg = Registry(tmp_path / "registry")
    for name, acc in (("a", 0.95), ("b", 0.90)):
        add(reg, fake_model(tmp_path / name), acc)
    before = history.history_path(reg.root).read_bytes()
    write = history.write_bytes_atomic

    def full(path, data, **kwargs):
        if Path(path).name == history.HISTORY_FILE:
            raise FULL
        write(path, data, **kwargs)

    monkeypatch.setattr(history, "write_bytes_atomic", full)
    assert main(["models", "promote", "v2", "--force", "--registry", str(reg.root)]) == 1
    line = one_error_line(capsys)
    assert f"could not append to {reg.root / 'history.jsonl'}" in line
    assert line.endswith("the disk is full: free some space or choose another folder (--registry)")
    assert reg.champion("mnist").version == "v0001"
    assert history.history_path(reg.root).read_bytes() == before
    assert not [p for p in reg.root.iterdir() if p.name.endswith(".tmp")]


def test_data_store_disk_full_adds_nothing(tmp_path, monkeypatch, capsys):
    from tests.flows.test_data_cli import write_idx

    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 10:18, 12:16] = np.arange(3, 23, dtype=np.uint8)[:, None, None] * 10
    labels = np.arange(20, dtype=np.int64) % 10
    img = write_idx(tmp_path / "x-images-idx3-ubyte.gz", images, 2051)
    lab = write_idx(tmp_path / "x-labels-idx1-ubyte.gz", labels, 2049)

    def full(path, array, **kwargs):
        raise OSError("Not enough free space to write 15680 bytes")

    monkeypatch.setattr(versions_module.np, "save", full)
    store = tmp_path / "store"
    assert main(["data", "add", str(img), str(lab), "--data-store", str(store)]) == 1
    line = one_error_line(capsys)
    assert f"cannot write data version {store / 'mnist'}/" in line
    assert line.endswith("choose another folder (--data-store)")
    assert DataStore(store).versions("mnist") == []
    assert [p.name for p in (store / "mnist").iterdir()] == [".lock"]


@pytest.fixture
def train(prefect_harness, mnist_dir, tmp_path, capsys):
    """Run ``mnist-flow train`` tiny; return its exit status."""

    def run(cache: Path) -> int:
        argv = ["train", "--data-dir", str(mnist_dir), "--cache-dir", str(cache)]
        argv += ["--registry", str(tmp_path / "registry"), "--out", str(tmp_path / "run")]
        argv += ["--train-size", "500", "--epochs", "1", "--hidden", "16", "--augment", "none"]
        capsys.readouterr()
        return main(argv)

    return run


def test_cache_disk_full_names_the_prepared_folder_and_cache_dir(
    train, tmp_path, monkeypatch, capsys
):
    def full(path, array, **kwargs):
        raise OSError("Not enough free space to write 31360000 bytes")  # numpy's words

    monkeypatch.setattr(prepare_module.np, "save", full)
    cache = tmp_path / "cache"
    assert train(cache) == 1
    line = one_error_line(capsys, flow=True)
    assert f"cannot write the prepared arrays {cache / 'prepared'}/mnist-" in line
    assert "Not enough free space" in line and line.endswith("(--cache-dir)")
    assert list((cache / "prepared").iterdir()) == []  # no half-written folder
    assert not (tmp_path / "run").exists() and Registry(tmp_path / "registry").list() == []


def test_out_disk_full_names_the_run_folder_not_its_staging(train, tmp_path, monkeypatch, capsys):
    copy = rundir_module.copy_atomic

    def full(src, dst):
        if Path(dst).name == "model.npz":
            raise FULL
        copy(src, dst)

    monkeypatch.setattr(rundir_module, "copy_atomic", full)
    assert train(tmp_path / "cache") == 1
    line = one_error_line(capsys, flow=True)
    assert f"to {tmp_path / 'run'}: " in line and ".run." not in line
    assert line.endswith("choose another folder (--out)")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".run", "run"))] == []
    assert "the model was registered before: v0001" in line  # registration comes first
    assert [v.version for v in Registry(tmp_path / "registry").list()] == ["v0001"]


def test_a_full_disk_without_a_file_names_every_folder_written(tmp_path):
    from argparse import Namespace

    from flows.cli.diskfull import disk_full_line

    args = Namespace(cache_dir=str(tmp_path / "c"), out_dir=None, registry_dir=str(tmp_path))
    assert disk_full_line(FULL, args) == (
        "No space left on device; the disk is full: free some space or choose another folder "
        "(--registry, --cache-dir, --out)"
    )
    staged = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".run.ab_12x9z.tmp"))
    args.out_dir = str(tmp_path / "run")
    line = disk_full_line(staged, args)
    assert line.startswith(f"{tmp_path / 'run'}: No space") and line.endswith("(--out)")
    assert disk_full_line(OSError(errno.EACCES, "Permission denied"), args) is None
