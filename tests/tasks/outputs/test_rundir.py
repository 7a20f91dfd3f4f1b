"""The run folder's staging: named by its process, removed once that process is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tasks.outputs.rundir import publish, remove_stale_staging, staged_run_dir


def test_only_staging_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".out.staging-{dead.stdout.strip()}.abc123.tmp"
    live = tmp_path / f".out.staging-{os.getpid()}.def456.tmp"
    other = tmp_path / ".out.abc.tmp"  # not a staging folder of ours
    for folder in (stale, live, other):
        (folder / "report.md").parent.mkdir()
        (folder / "report.md").write_text("x")
    assert remove_stale_staging(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
    with staged_run_dir(tmp_path / "out") as staging:  # a run writing there: its own is named
        assert staging.name.startswith(f".out.staging-{os.getpid()}.")
        (staging / "report.md").write_text("new")
    assert (tmp_path / "out" / "report.md").read_text() == "new" and not staging.exists()


def test_an_existing_folder_loses_its_records_before_the_new_files_arrive(
    tmp_path: Path, monkeypatch
) -> None:
    target, staging = tmp_path / "out", tmp_path / "staging"
    target.mkdir()
    staging.mkdir()
    for name in ("report.md", "metrics.json", "model.npz", "search.png", "notes.txt"):
        (target / name).write_text("old")
    for name in ("metrics.json", "model.npz"):  # this run writes no report.md, no search.png
        (staging / name).write_text("new")
    moved = []
    real = os.replace

    def watch(src, dst):  # the target's files when each file arrives
        moved.append((Path(dst).name, sorted(p.name for p in target.iterdir())))
        real(src, dst)

    monkeypatch.setattr(os, "replace", watch)
    publish(staging, target)
    monkeypatch.undo()
    assert [name for name, _ in moved] == ["model.npz", "metrics.json"]  # the records last
    assert "report.md" not in moved[0][1] and "metrics.json" not in moved[0][1]
    assert {p.name: p.read_text() for p in target.iterdir()} == {
        "metrics.json": "new", "model.npz": "new", "search.png": "old", "notes.txt": "old"
    }  # fmt: skip
