"""Shared fixtures: the real datasets beside the checkout and Prefect's test harness."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

# As in flows.cli.main: the garbage collector waits until the test modules are imported
# (pytest_collection_finish). The objects those imports create (Prefect, matplotlib, FastAPI)
# live as long as the process, and collections while importing walk them again and again.
gc.disable()

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


EARLY_PREFECT_DB = "MNIST_FLOW_TESTS_PREFECT_DB"
"""The folder where :func:`pytest_configure` began making the migrated database."""


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Freeze the heap at the process's end, and on a run of the whole suite (``make
    test``), start making the migrated Prefect database (:mod:`tests.prefect_db`) at once,
    in the background.

    Its migration takes about 14 CPU-seconds, and the first test of every worker needs it:
    made here, it overlaps with the workers' start and collection instead of holding them
    all up. A run of some files, or of the fast tests, makes it when a test asks.
    """
    atexit.register(gc.freeze)  # nor walk every object once more as the process ends
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        gc.enable()  # the controller of xdist workers: it imports no test module
    if hasattr(config, "workerinput") or os.environ.get(EARLY_PREFECT_DB):
        return  # an xdist worker (its controller decides), or a run inside one that began it
    whole = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if not whole or "not slow" in (config.option.markexpr or ""):
        return
    from tests import prefect_db

    folder = Path(tempfile.mkdtemp(prefix="mnist-flow-tests-prefect-db-"))
    os.environ[EARLY_PREFECT_DB] = str(folder)  # read by the workers, started after this
    prefect_db.set_folder(folder)

    def make() -> None:
        with contextlib.suppress(Exception):  # not lost: the first test asking makes it again
            prefect_db.template()

    thread = threading.Thread(target=make)
    thread.start()

    def clean_up() -> None:
        thread.join()
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(EARLY_PREFECT_DB, None)

    config.add_cleanup(clean_up)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The test modules are imported: what they created lives on, and the collector, now
    back, leaves it alone (:func:`gc.freeze`)."""
    gc.freeze()
    gc.enable()


@pytest.fixture(scope="session", autouse=True)
def prefect_db_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where the migrated database of the tests' Prefect homes is made, once for all workers
    (:mod:`tests.prefect_db`): where :func:`pytest_configure` began it, else beside the
    workers' temporary folders."""
    from tests import prefect_db

    if os.environ.get(EARLY_PREFECT_DB):
        prefect_db.set_folder(Path(os.environ[EARLY_PREFECT_DB]))
        return
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    prefect_db.set_folder(shared / "prefect-db")


HARNESS_ATTEMPTS = 3
"""Starts of the harness's server before a port race fails the session's Prefect tests."""


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Run Prefect flows and tasks against a temporary local database.

    The harness puts its database in a new temporary folder; here that folder already holds
    a migrated copy (:mod:`tests.prefect_db`), which halves the server's start. Flows run
    with the settings of a command's temporary server (no heartbeats: see
    :func:`flows.local.server.local_run_settings`): each flow run would otherwise wait up to
    a second for Prefect's heartbeat thread at its end, and no test reads a heartbeat.
    """
    import httpx
    import prefect.settings
    from prefect.testing import utilities

    from flows.local.server import local_run_settings
    from tests import prefect_db

    def migrated_folder() -> str:
        folder = tempfile.mkdtemp()
        shutil.copyfile(prefect_db.template(), Path(folder) / "prefect-test.db")
        return folder

    with pytest.MonkeyPatch.context() as patch, contextlib.ExitStack() as stack:
        patch.setattr(utilities, "mkdtemp", migrated_folder)
        for attempt in range(1, HARNESS_ATTEMPTS + 1):
            try:
                stack.enter_context(utilities.prefect_test_harness(server_startup_timeout=120))
                break
            except httpx.HTTPError:
                # The harness picks a free port, then starts its server; another test's
                # process may take the port in between. Prefect retries when its server
                # reports the port in use, but not when its health check reaches the other
                # listener first.
                if attempt == HARNESS_ATTEMPTS:
                    raise
        patch.undo()
        with prefect.settings.temporary_settings(updates=local_run_settings()):
            yield


#: Work units of ``make test`` other than a test module, by the start of their tests' ids.
#: A unit's tests run on one worker, in order, so its module fixtures are made once.
UNITS = {
    # made once: the integration server, its deployments, pool and worker (tests/integration)
    "tests/integration/test_approval_ui.py": "prefect-deployments",
    "tests/integration/test_deployment.py": "prefect-deployments",
    "tests/integration/test_operating.py": "prefect-deployments",
    # about a minute each: together they would keep one worker busy for three
    "tests/test_cli_defaults.py::test_any_train_options": "cli-defaults-train-options",
    "tests/test_cli_defaults.py::test_any_run_options": "cli-defaults-run-options",
    "tests/test_cli_defaults.py::test_every_subcommand_with_only_the_required_options[idx1000": (
        "cli-defaults-idx1000"
    ),
    "tests/test_cli_defaults.py::test_every_subcommand_with_only_the_required_options[mnist10k": (
        "cli-defaults-mnist10k"
    ),
    "tests/test_cli_defaults.py::test_every_subcommand_with_only_the_required_options[fashion": (
        "cli-defaults-fashion-mnist"
    ),
    "tests/test_interrupts.py::test_kill_9_leaves_the_run_crashed_on_a_configured_server": (
        "interrupts-configured-server"
    ),
    "tests/test_interrupts.py::test_sigterm_ends_the_run_like_ctrl_c": (
        "interrupts-configured-server"
    ),
}

#: The longest work units, longest first (seconds of their tests in one ``make test`` on the
#: quiet two-core machine, from ``--durations``); the other units follow in collection
#: order. Handed out first, the long units end with the short ones instead of after them
#: (in ``make test-fast`` too, where the fast modules among them come first).
LONGEST_FIRST = (
    "prefect-deployments",  # ~230 s
    "tests/integration/test_data_trigger.py",  # ~100 s
    "tests/flows/test_faults.py",  # ~90 s
    "tests/test_interrupts.py",  # ~80 s, Ctrl-C and kill -9 of the zero-setup path
    "cli-defaults-fashion-mnist",
    "cli-defaults-train-options",
    "cli-defaults-run-options",
    "tests/integration/test_offline_run.py",
    "tests/test_cli.py",
    "interrupts-configured-server",
    "tests/flows/test_approval.py",
    "tests/flows/test_pipeline.py",
    "tests/flows/test_added_data.py",
    "tests/tasks/outputs/test_report.py",
    "cli-defaults-mnist10k",
    "tests/flows/serve/test_workers.py",
    "tests/tasks/test_fetch.py",
    "tests/flows/test_train_evaluate.py",
    "cli-defaults-idx1000",
    "tests/tasks/data/test_prepare.py",
    "tests/tasks/outputs/test_plots.py",
    "tests/flows/serve/test_page.py",
    "tests/tasks/test_cache.py",
    "tests/flows/serve/test_api.py",
    "tests/flows/test_disk_full.py",
    "tests/tasks/test_predict.py",
    "tests/tasks/tuning/test_trials.py",
)


def work_unit(nodeid: str) -> str:
    """The work unit of the test ``nodeid``: a name of :data:`UNITS`, else its module."""
    for prefix, unit in UNITS.items():
        if nodeid.startswith(prefix):
            return unit
    return nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start Prefect's test server are slow (``make test-fast`` leaves them out).

    The units of :data:`LONGEST_FIRST` come first, in that order (a stable sort: the order
    within a unit, and of the other units, stays).
    """
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` hands out :func:`work_unit`s, in collection order (`make test`).

    (pytest-xdist's own ``loadgroup`` no longer groups under pytest 9: it renames
    ``item._nodeid``, which pytest 9 does not read.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # collection order: the longest units first
    return WorkUnits(config, log)
