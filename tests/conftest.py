"""Shared fixtures: the real datasets beside the checkout and Prefect's test harness."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real IDX datasets (``../shared/data``); its absence is an error."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fashion-mnist").is_dir():
        raise RuntimeError(
            f"real datasets not found at {SHARED_DATA}; the tests need ../shared/data "
            "beside the checkout (or MNIST_FLOW_SHARED_DATA pointing at it)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_dir(shared_data: Path) -> Path:
    """The real MNIST test set and training labels."""
    return shared_data / "mnist"


@pytest.fixture(scope="session")
def fashion_dir(shared_data: Path) -> Path:
    """The complete Fashion-MNIST."""
    return shared_data / "fashion-mnist"


@pytest.fixture(scope="session", autouse=True)
def data_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty data store for the session: batches added by hand never reach a test."""
    path = tmp_path_factory.mktemp("data-store")
    saved = os.environ.get("MNIST_FLOW_DATA")
    os.environ["MNIST_FLOW_DATA"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("MNIST_FLOW_DATA", None)
    else:
        os.environ["MNIST_FLOW_DATA"] = saved


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread in the test process, as the tests' small matrices want it.

    On a shared two-core machine a second BLAS thread waits for a core, and a test that
    trains made many times slower that way (bench/ measures the thread policy itself). A test
    about threads sets its own count inside, which this limit does not cap; subprocesses
    (the command line, servers) keep their own policy.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Run Prefect flows and tasks against a temporary local database."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start Prefect's test server are slow (``make test-fast`` leaves them out)."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
