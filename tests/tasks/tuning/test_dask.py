"""A small search on a real Dask cluster (``distributed.LocalCluster`` on loopback TCP)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import tasks.tuning.runner as search_runner
from tasks.data.prepare import PreparedData
from tasks.errors import SearchError
from tasks.tuning.overrides import build_space
from tasks.tuning.runner import run_search
from tasks.tuning.trials import TrialArrays
from tests.tasks.search_data import small_fashion

pytestmark = pytest.mark.slow  # worker processes: left out of `make test-fast`

OVERRIDES = {"hidden": 32, "lr": "0.01:0.1:log"}


def test_search_on_a_local_dask_cluster_matches_loky(
    fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from distributed import LocalCluster

    data: PreparedData = small_fashion(fashion_dir, tmp_path_factory)
    space = build_space(OVERRIDES)
    done: list[int] = []
    holders: list[int] = []

    def on_trial(result, count: int, total: int) -> None:
        done.append(count)
        # the splits were scattered to every worker once, as arrays (not as file paths)
        holders.append(
            sum(
                any(isinstance(value, TrialArrays) for value in worker.data.values())
                for worker in cluster.workers.values()
            )
        )

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        on_dask = run_search(
            data, space, n_trials=4, trial_epochs=1, seed=4, backend="dask",
            dask_address=address, cache_dir=tmp_path, on_trial=on_trial,
        )  # fmt: skip
        executed = sum(w.state.executed_count for w in cluster.workers.values())
    assert cluster.status.name == "closed"
    assert sorted(done) == [1, 2, 3, 4] and on_dask.n_trained == 4
    assert holders == [2, 2, 2, 2]
    assert executed >= 4  # the trials ran on the cluster's workers
    assert on_dask.placement["where"] == f"dask at {address}: 2 workers, 2 threads"
    # the same trials on loky (one BLAS thread each, like the Dask workers): same numbers
    local = run_search(data, space, n_trials=4, trial_epochs=1, seed=4, n_jobs=2)
    for remote, here in zip(on_dask.trials, local.trials, strict=True):
        assert remote["params"] == here["params"]
        assert remote["val_loss"] == pytest.approx(here["val_loss"], rel=1e-5)
    assert on_dask.best_params == local.best_params


def test_unreachable_scheduler_is_a_search_error(
    fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = small_fashion(fashion_dir, tmp_path_factory)
    monkeypatch.setattr(search_runner, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(
        SearchError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        run_search(
            data, build_space(), n_trials=1, backend="dask", dask_address="tcp://127.0.0.1:9"
        )


def test_dask_without_address_starts_a_local_cluster(
    fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = small_fashion(fashion_dir, tmp_path_factory)
    space = build_space(OVERRIDES)
    result = run_search(data, space, n_trials=2, trial_epochs=1, seed=4, n_jobs=1, backend="dask")
    local = run_search(data, space, n_trials=2, trial_epochs=1, seed=4, n_jobs=2)
    assert [t["params"] for t in result.trials] == [t["params"] for t in local.trials]
    assert result.best_val_accuracy == pytest.approx(local.best_val_accuracy, abs=1e-9)
    assert result.placement["workers"] == 1 and result.placement["address"].startswith("tcp://")


def test_a_scheduler_without_workers_is_waited_for_aloud_then_a_search_error(
    fashion_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from distributed import LocalCluster

    data = small_fashion(fashion_dir, tmp_path_factory)
    monkeypatch.setattr(search_runner, "DASK_WORKERS_TIMEOUT", 3)
    monkeypatch.setattr("tasks.tuning.cluster.WAIT_LOG_SECONDS", 1.0)
    logger = logging.getLogger("test-dask-wait")
    with LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster, caplog.at_level(logging.WARNING, logger.name):  # fmt: skip
        address = cluster.scheduler_address
        space = build_space(OVERRIDES)
        with pytest.raises(SearchError, match=f"scheduler at {address} has no worker after 3 s"):
            run_search(data, space, n_trials=1, backend="dask", dask_address=address, logger=logger)
    waiting = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert len(waiting) >= 2, waiting  # every second over three seconds, the last one raises
    for line in waiting:
        assert f"the Dask scheduler at {address} has no worker yet; waiting " in line
        assert "s more (of 3 s): start some with `dask worker " in line
