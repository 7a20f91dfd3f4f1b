"""Kill a search in the middle and run the same command again: only unfinished trials train."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tasks.tuning.trials
from tasks.data.prepare import PreparedData
from tasks.tuning.overrides import build_space
from tasks.tuning.runner import run_search
from tests.tasks.search_data import small_fashion

pytestmark = pytest.mark.slow  # worker processes: left out of `make test-fast`

REPO = Path(__file__).resolve().parents[3]
N_TRIALS = 6
OVERRIDES = {"hidden": 32, "batch_size": "64,128"}

# The child prints a line per finished trial and waits for the parent's go-ahead (a line on
# its stdin), so the parent can kill it after a given number of trials, before the next ends.
CHILD = """
import pickle, sys
from tasks.tuning.runner import run_search
from tasks.tuning.overrides import build_space

data, cache_dir, overrides, n_trials, more = pickle.loads(open(sys.argv[1], "rb").read())

def pause(result, done, total):
    print(f"finished trial {result.trial} round {result.rung}", flush=True)
    sys.stdin.readline()

options = {"trial_epochs": 1, **more}
run_search(data, build_space(overrides), n_trials=n_trials, seed=2, n_jobs=1,
           cache_dir=cache_dir, on_trial=pause, **options)
print("search complete", flush=True)
"""


def run_child_until(args: Path, finished: int, timeout: float = 60.0) -> list[str]:
    """Start the search in a new process group; SIGKILL it after ``finished`` trials."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(args)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while sum(line.startswith("finished") for line in lines) < finished:
            line = proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise AssertionError(f"the search process ended or stalled early: {lines}")
            lines.append(line.strip())
            if (
                line.startswith("finished")
                and sum(x.startswith("finished") for x in lines) < finished
            ):
                proc.stdin.write("go\n")  # the next trial may finish
                proc.stdin.flush()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stdin.close()
    return lines


def test_killed_search_resumes_with_only_unfinished_trials(
    fashion_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data: PreparedData = small_fashion(fashion_dir, tmp_path_factory)
    args = tmp_path / "args.pickle"
    args.write_bytes(pickle.dumps((data, tmp_path / "cache", OVERRIDES, N_TRIALS, {})))

    lines = run_child_until(args, finished=2)
    assert "search complete" not in lines
    stored = {
        json.loads(p.read_text())["result"]["trial"]
        for p in (tmp_path / "cache" / "trials").glob("*.json")
    }
    reported = {int(line.split()[2]) for line in lines if line.startswith("finished")}
    assert reported <= stored  # a trial is stored before it is reported
    assert 2 <= len(stored) < N_TRIALS
    assert not list((tmp_path / "cache" / "trials").glob(".trial-*"))  # no half-written files

    trained: list[int] = []
    cached: list[int] = []

    def record(result, done, total):
        (cached if result.cached else trained).append(result.trial)

    space = build_space(OVERRIDES)
    store = {"cache_dir": tmp_path / "cache"}
    resumed = run_search(data, space, n_trials=N_TRIALS, trial_epochs=1, seed=2, n_jobs=1,
                         on_trial=record, **store)  # fmt: skip
    assert sorted(cached) == sorted(stored)
    assert sorted(trained) == sorted(set(range(N_TRIALS)) - stored)
    assert (resumed.n_trained, resumed.n_cached) == (N_TRIALS - len(stored), len(stored))

    # the resumed search equals one that was never interrupted
    fresh = run_search(data, space, n_trials=N_TRIALS, trial_epochs=1, seed=2, n_jobs=1)
    strip = ("seconds", "cached")
    assert [{k: v for k, v in t.items() if k not in strip} for t in resumed.trials] == [
        {k: v for k, v in t.items() if k not in strip} for t in fresh.trials
    ]
    assert resumed.best_params == fresh.best_params

    # a third run trains nothing; a new code version of the trials retrains everything
    again = run_search(data, space, n_trials=N_TRIALS, trial_epochs=1, seed=2, n_jobs=1, **store)
    assert (again.n_trained, again.n_cached) == (0, N_TRIALS)
    monkeypatch.setattr(tasks.tuning.trials, "CODE_VERSION", tasks.tuning.trials.CODE_VERSION + 1)
    changed = run_search(data, space, n_trials=2, trial_epochs=1, seed=2, n_jobs=1, **store)
    assert changed.n_trained == 2


HALVING = {"trial_epochs": 4, "halving": True, "halving_factor": 2}


def test_a_search_killed_in_a_later_round_loses_no_finished_round(
    fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Halving 6 trials (1, 2 then 4 epochs): kill it in round 2, after its first trial."""
    data: PreparedData = small_fashion(fashion_dir, tmp_path_factory)
    args = tmp_path / "args.pickle"
    args.write_bytes(pickle.dumps((data, tmp_path / "cache", OVERRIDES, 6, HALVING)))
    lines = run_child_until(args, finished=7)  # the 6 trials of round 1, one of round 2
    assert "search complete" not in lines
    assert [line.split()[-1] for line in lines if line.startswith("finished")] == ["0"] * 6 + ["1"]
    checkpoints = list((tmp_path / "cache" / "checkpoints").glob("*-e*.json"))
    assert len(checkpoints) == 6  # one per trial: round 1's, or round 2's for the one done

    runs: list[tuple[int, int, bool, int]] = []
    space = build_space(OVERRIDES)
    resumed = run_search(
        data, space, n_trials=6, seed=2, n_jobs=1, cache_dir=tmp_path / "cache",
        on_trial=lambda r, d, t: runs.append(
            (r.rung, r.trial, r.cached, r.resumed)), **HALVING,
    )  # fmt: skip
    first = [r for r in runs if r[0] == 0]
    assert len(first) == 6 and all(cached for _, _, cached, _ in first)  # round 1 not redone
    second = [r for r in runs if r[0] == 1]
    assert sum(cached for _, _, cached, _ in second) == 1
    assert all(start == 1 for _, _, cached, start in second if not cached)  # continued
    assert not (tmp_path / "cache" / "checkpoints").exists()  # removed at the end

    fresh = run_search(data, space, n_trials=6, seed=2, n_jobs=1, **HALVING)
    strip = ("seconds", "cached")
    assert [{k: v for k, v in t.items() if k not in strip} for t in resumed.trials] == [
        {k: v for k, v in t.items() if k not in strip} for t in fresh.trials
    ]
