"""Cache keys follow the inputs and the area's code version, not the source tree;
``mnist-flow cache`` lists and prunes what the cache holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import tasks.data.prepare
import tasks.fitting.fit
import tasks.tuning.trials
from tasks.cache import content_key, entries, prune, reused, summarize
from tasks.data.datasets import ROLES, DatasetFiles
from tasks.data.prepare import PrepareParams, pool_dir, split_name
from tasks.train import final_key
from tasks.tuning.trials import TrialResult, TrialSpec, TrialStore, versions

ROOT = Path(__file__).resolve().parents[2]

KEYS = """
import json
from pathlib import Path
from types import SimpleNamespace
from tasks.data.datasets import ROLES, DatasetFiles
from tasks.data.prepare import PrepareParams, pool_dir, split_name
from tasks.train import final_key
from tasks.tuning.trials import TrialSpec, TrialStore, versions

files = DatasetFiles("mnist", *[Path(f"/d/{i}") for i in range(4)], dict.fromkeys(ROLES, "a" * 64))
data = SimpleNamespace(key="mnist-0123/split-4567")
print(json.dumps([
    pool_dir(Path("/cache"), files).name,
    split_name(PrepareParams(val_size=100, seed=3)),
    final_key(data, {"lr": 0.1}, seed=3),
    TrialStore("/t", {"data": data.key, "code": versions()}).key(TrialSpec(1, 3, {"lr": 0.1}, 2)),
]))
"""


def _keys(root: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", KEYS], cwd=root, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


@pytest.mark.slow
def test_a_docstring_edit_outside_an_area_keeps_every_key(tmp_path: Path) -> None:
    for package in ("nn", "tasks", "flows"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__py*"))
    before = _keys(tmp_path)
    cli = tmp_path / "flows" / "common.py"
    cli.write_text('"""An edited docstring."""\n' + cli.read_text(encoding="utf-8"))
    (tmp_path / "tasks" / "train.py").write_text(
        (tmp_path / "tasks" / "train.py").read_text(encoding="utf-8") + "\n# a comment\n"
    )
    assert _keys(tmp_path) == before
    assert len(set(before)) == 4


def _current_keys() -> list[str]:
    files = DatasetFiles(
        "mnist", *[Path(f"/d/{i}") for i in range(4)], dict.fromkeys(ROLES, "a" * 64)
    )
    data = SimpleNamespace(key="mnist-0123/split-4567")
    spec = TrialSpec(1, 3, {"lr": 0.1}, 2)
    return [
        pool_dir(Path("/cache"), files).name,
        split_name(PrepareParams(val_size=100, seed=3)),
        final_key(data, {"lr": 0.1}, seed=3),
        TrialStore("/t", {"data": data.key, "code": versions()}).key(spec),
    ]


def test_bumping_an_area_version_changes_its_keys_only(monkeypatch: pytest.MonkeyPatch) -> None:
    pool, split, final, trial = _current_keys()
    monkeypatch.setattr(tasks.data.prepare, "CODE_VERSION", tasks.data.prepare.CODE_VERSION + 1)
    assert _current_keys()[:2] != [pool, split] and _current_keys()[0] != pool
    assert _current_keys()[2:] == [final, trial]
    monkeypatch.undo()
    monkeypatch.setattr(tasks.fitting.fit, "CODE_VERSION", tasks.fitting.fit.CODE_VERSION + 1)
    now = _current_keys()
    assert now[:2] == [pool, split] and now[2] != final and now[3] != trial
    monkeypatch.undo()
    monkeypatch.setattr(tasks.tuning.trials, "CODE_VERSION", tasks.tuning.trials.CODE_VERSION + 1)
    assert _current_keys()[:3] == [pool, split, final] and _current_keys()[3] != trial


def test_content_key_is_the_inputs_not_their_order() -> None:
    assert content_key(a=1, b=[1, 2]) == content_key(b=[1, 2], a=1)
    assert content_key(a=1, b=[1, 2]) != content_key(a=1, b=[2, 1])
    assert len(content_key(a=Path("/x"))) == 24


def test_a_reused_result_is_a_completed_state_named_cached(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(b"x")
    os.utime(path, (1, 1))
    state = reused({"n": 1}, path)
    assert state.is_completed() and state.name == "Cached" and state.data == {"n": 1}
    assert path.stat().st_mtime > 1  # reuse counts as use for --older-than


def test_a_reused_trial_counts_as_used(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, {"data": "d", "code": versions()})
    spec = TrialSpec(0, 0, {"lr": 0.1}, 1)
    path = store.put(spec, TrialResult(0, 0, 1, 0, {"lr": 0.1}, "ok"))
    os.utime(path, (1, 1))
    assert store.get(spec).cached and path.stat().st_mtime > 1


def _fill(root: Path) -> None:
    """A cache of every kind, the older entries first (a day apart)."""
    now = time.time()
    layout = {
        "mnist/train-images-idx3-ubyte.gz": 400,
        "prepared/mnist-aaa/train_images.npy": 1000,
        "prepared/mnist-aaa/split-1.npz": 10,
        "prepared/mnist-bbb/train_images.npy": 2000,
        "trials/t1.json": 5,
        "trials/t2.json": 6,
        "trials/t3.json": 7,
        "models/m1.npz": 50,
        "models/m1.json": 3,
        "checkpoints/c1-e2.npz": 20,
        "checkpoints/c1-e2.json": 1,
        "checkpoints/c1-e2.state.npz": 2,
        "prefect-results/old": 9,
        "prepared/.mnist-ccc.tmp/x.npy": 99,  # a write in progress
    }
    for age, (name, size) in enumerate(layout.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age * 86400, now - age * 86400))
        os.utime(path.parent, (now - age * 86400, now - age * 86400))


def test_summarize_counts_entries_and_bytes_by_kind(tmp_path: Path) -> None:
    _fill(tmp_path)
    rows = {row["kind"]: (row["entries"], row["bytes"]) for row in summarize(tmp_path)}
    assert rows == {
        "downloads": (1, 400),
        "prepared": (2, 3010),
        "trials": (3, 18),
        "checkpoints": (1, 23),
        "models": (1, 53),
        "other": (1, 9),
    }
    assert summarize(tmp_path / "missing") == []


def test_prune_keeps_the_newest_of_each_kind(tmp_path: Path) -> None:
    _fill(tmp_path)
    removed = prune(tmp_path, keep=1)
    assert sorted(e.kind for e in removed) == ["prepared", "trials", "trials"]
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == ["t1.json"]
    assert [p.name for p in (tmp_path / "prepared").iterdir() if p.name[0] != "."] == ["mnist-aaa"]
    assert (tmp_path / "prepared" / ".mnist-ccc.tmp").is_dir()  # never touched


def test_prune_older_than_removes_whole_entries(tmp_path: Path) -> None:
    _fill(tmp_path)
    removed = prune(tmp_path, older_than=6.5)  # the model: its .npz is 7 days old
    assert sorted(e.kind for e in removed) == ["checkpoints", "models", "other"]
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert not list((tmp_path / "checkpoints").iterdir())  # weights, state and metadata
    assert len(entries(tmp_path)) == 6


def test_the_cache_command_shows_sizes_and_prunes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    _fill(tmp_path)
    assert main(["cache", "--cache-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"cache {tmp_path}:"
    assert lines[3].split()[:3] == ["prepared", "2", "0.0"]  # 3,010 bytes
    assert lines[-1].split() == ["total", "9", "0.0"]
    assert main(["cache", "--cache-dir", str(tmp_path), "--keep", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed 3 entries (0.0 MB)\n") and "total              6" in out
    assert main(["cache", "--cache-dir", str(tmp_path), "--older-than", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "mnist-flow: error: --older-than=-1.0 must be >= 0"
    assert len(entries(tmp_path)) == 6
