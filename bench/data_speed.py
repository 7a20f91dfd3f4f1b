"""Wall time of the data steps, and why big arrays stay out of Prefect's result store.

Three measurements on the complete Fashion-MNIST read from ``--data-dir``
(default ``../shared/data/fashion-mnist`` beside the checkout, or
``$MNIST_FLOW_SHARED_DATA/fashion-mnist``):

1. ``fetch`` + ``preprocess`` as Prefect tasks in a flow, against a temporary
   Prefect server (``prefect_test_harness``): *cold* (empty cache directory:
   verify the four files, split, scale, write the ``.npy`` files) and *warm*
   (same inputs again: ``preprocess`` answers ``Cached``, ``fetch`` verifies the
   folder's files again). Times are the two task
   calls inside the flow and the whole flow run (which adds Prefect's own
   start-up and log flushing).
2. The pure functions underneath: ``fetch_files`` (parse and verify the four
   files) and ``prepare`` (split, scale, write), then ``PreparedData.load``
   memory-mapped and fully read, and ``PreparedData.verify`` (the SHA-256 of every
   array file, checked before a step reads them) cold and again.
3. Persisting and loading the (60000, 784) float32 training matrix through
   Prefect's default result serializer (pickle, base64 inside JSON) against
   ``np.save``/``np.load``.

Timings are wall-clock on a shared machine: expect noise; ``--repeat`` reports the
best and the median.

Example::

    python bench/data_speed.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tasks.data.prepare import PrepareParams, prepare  # noqa: E402
from tasks.data.sources import fetch_files  # noqa: E402

SHARED = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO.parent / "shared" / "data"))


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Return the wall time of ``fn(*args, **kwargs)`` and its result."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def _row(name: str, times: list[float], note: str = "") -> str:
    return f"| {name} | {min(times):.2f} | {statistics.median(times):.2f} | {note} |"


def bench_tasks(data_dir: Path, repeat: int) -> list[str]:
    """Cold and warm fetch + preprocess through Prefect."""
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from tasks.fetch import fetch
    from tasks.preprocess import preprocess

    @flow(name="bench-data")
    def data_flow(cache: str) -> tuple[float, str, str]:
        start = time.perf_counter()
        fetched = fetch("fashion-mnist", data_dir=str(data_dir), cache_dir=cache, return_state=True)
        prepared = preprocess(fetched.result(), cache_dir=cache, return_state=True)
        prepared.result()
        return time.perf_counter() - start, fetched.name, prepared.name

    times: dict[str, list[float]] = {"cold": [], "warm": [], "cold flow": [], "warm flow": []}
    states: dict[str, set[str]] = {"cold": set(), "warm": set()}
    with prefect_test_harness(server_startup_timeout=120):
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as cache:
                for kind in ("cold", "warm"):
                    wall, (tasks_s, fetch_state, prep_state) = _timed(data_flow, cache)
                    times[kind].append(tasks_s)
                    times[f"{kind} flow"].append(wall)
                    states[kind].add(f"{fetch_state}/{prep_state}")
    return [
        _row("fetch + preprocess, cold (tasks)", times["cold"], " ".join(sorted(states["cold"]))),
        _row("fetch + preprocess, warm (tasks)", times["warm"], " ".join(sorted(states["warm"]))),
        _row("whole flow run, cold", times["cold flow"]),
        _row("whole flow run, warm", times["warm flow"]),
    ]


def bench_pure(data_dir: Path, repeat: int) -> list[str]:
    """The pure functions under the tasks."""
    from tasks.data import arrays

    fetch_t, prepare_t, mmap_t, read_t, verify_t, again_t = [], [], [], [], [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            t, files = _timed(
                fetch_files, "fashion-mnist", data_dir=str(data_dir), cache_dir=cache, mirrors=[]
            )
            fetch_t.append(t)
            t, prepared = _timed(prepare, files, PrepareParams(), Path(cache) / "out")
            prepare_t.append(t)
            t, splits = _timed(prepared.load, mmap=True)
            mmap_t.append(t)
            t, _ = _timed(np.sum, splits.X_train, dtype=np.float64)
            read_t.append(t)
            arrays._HASHED.clear()  # as in a new process: hash every file
            t, _ = _timed(prepared.verify)
            verify_t.append(t)
            t, _ = _timed(prepared.verify)
            again_t.append(t)
    return [
        _row("fetch_files: parse + verify 4 files", fetch_t),
        _row("prepare: split, scale, write .npy", prepare_t),
        _row("PreparedData.load(mmap=True)", mmap_t),
        _row("first full pass over mmapped X_train", read_t),
        _row("PreparedData.verify: SHA-256 of every array", verify_t, "once per process"),
        _row("PreparedData.verify again", again_t, "unchanged files: a stat each"),
    ]


def bench_serialization(repeat: int) -> list[str]:
    """Prefect's default result serializer against np.save/np.load for X_train."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60_000, 784), dtype=np.float32)
    persist, load, save, npload = [], [], [], []
    for i in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            store = ResultStore(
                result_storage=LocalFileSystem(basepath=tmp), cache_result_in_memory=False
            )
            t, _ = _timed(store.write, obj=X, key=f"x{i}")
            persist.append(t)
            t, record = _timed(store.read, key=f"x{i}")
            load.append(t)
            assert np.array_equal(record.result, X)
            path = Path(tmp) / "X.npy"
            t, _ = _timed(np.save, path, X)
            save.append(t)
            t, _ = _timed(np.load, path)
            npload.append(t)
    return [
        _row("Prefect result store: persist X_train", persist, "pickle, base64 in JSON"),
        _row("Prefect result store: load X_train", load),
        _row("np.save X_train", save),
        _row("np.load X_train", npload),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED / "fashion-mnist")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only", choices=["tasks", "pure", "serialization"], nargs="*", default=None
    )
    args = parser.parse_args(argv)
    parts = args.only or ["tasks", "pure", "serialization"]
    print(f"Fashion-MNIST from {args.data_dir}, {args.repeat} repeats, seconds\n")
    print("| step | best | median | note |\n| --- | ---: | ---: | --- |")
    if "tasks" in parts:
        print("\n".join(bench_tasks(args.data_dir, args.repeat)))
    if "pure" in parts:
        print("\n".join(bench_pure(args.data_dir, args.repeat)))
    if "serialization" in parts:
        print("\n".join(bench_serialization(args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
