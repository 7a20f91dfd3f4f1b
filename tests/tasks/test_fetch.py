"""Fetching: loopback mirrors, file:// mirrors, local folders, the cache, and every failure."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from uuid import UUID

import pytest

from nn.errors import ConfigError
from tasks.data import sources
from tasks.data.datasets import ROLES, get_dataset
from tasks.data.download import DownloadFailed, download
from tasks.data.sources import fetch_files
from tasks.data.verify import RECORD
from tasks.errors import CacheError, DataError, FetchError, IDXFormatError
from tests.tasks.idx_helpers import ROLE_FILES, idx_folder_from_mnist_test, serve

FASHION_SHA = {fs.role: fs.sha256 for fs in get_dataset("fashion-mnist").files}


def _no_sleep(seconds: float) -> None:
    """Backoff without waiting."""


def _fetch(dataset: str, cache: Path, **kwargs: object):
    options = {"mirrors": [], "local_dirs": [], "retries": 1, "sleep": _no_sleep, "timeout": 10}
    return fetch_files(dataset, cache_dir=cache, **{**options, **kwargs})


def _leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.name.startswith(".") or p.suffix == ".part"]


@pytest.mark.slow  # three mirrors over HTTP
def test_loopback_mirrors_corrupt_then_truncated_then_good(
    fashion_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real download path: a corrupt mirror and a truncating one are skipped and logged."""
    cache = tmp_path / "cache"
    with serve(fashion_dir) as server, caplog.at_level(logging.INFO):
        mirrors = [server.url("corrupt"), server.url("truncate"), server.url("good")]
        files = _fetch("fashion-mnist", cache, mirrors=mirrors)
    assert files.checksums == FASHION_SHA and files.n_classes == 10
    assert files.image_shape == (28, 28)
    for role in ROLES:
        assert files.path(role) == cache / "fashion-mnist" / ROLE_FILES[role]
        assert files.sources[role] == server.url("good") + ROLE_FILES[role]
    assert sorted(p.name for p in (cache / "fashion-mnist").iterdir()) == sorted(
        [*ROLE_FILES.values(), RECORD]
    )
    assert _leftovers(cache) == []
    log = caplog.text
    assert f"{server.url('corrupt')}train-images-idx3-ubyte.gz failed" in log
    assert f"{server.url('truncate')}train-images-idx3-ubyte.gz failed" in log
    assert "truncated download" in log and "retrying" in log
    assert "gzip" in log or "SHA-256" in log  # what was wrong with the corrupt copy
    truncated = [r for r in server.requests if r.startswith("/truncate/train-images")]
    assert len(truncated) == 2  # one retry of a transient failure, then the next mirror

    # A second fetch is served from the verified cache without touching the network.
    with serve(fashion_dir) as server:
        again = _fetch("fashion-mnist", cache, mirrors=[server.url("good")])
        assert server.requests == []
    assert again.checksums == files.checksums and set(again.sources.values()) == {"cache"}


def test_file_mirror_and_corrupt_cache_entry(fashion_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri())
    assert files.checksums == FASHION_SHA
    assert files.sources["test_labels"].startswith("file://")
    damaged = files.path("test_labels")
    damaged.write_bytes(damaged.read_bytes()[:-10])
    again = _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri())
    assert again.checksums == FASHION_SHA
    assert again.sources["test_labels"].startswith("file://")
    assert again.sources["train_images"] == "cache"


def test_a_verified_cache_is_not_read_again_until_a_file_changes(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record of a verified cache spares the next fetch the reading; a file written
    since, even at once and to the same size, is verified again and replaced."""
    cache = tmp_path / "cache"
    files = _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri())
    read: list[str] = []
    verify = sources.verify_file
    monkeypatch.setattr(sources, "verify_file", lambda p, fs: read.append(fs.role) or verify(p, fs))
    again = _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri())
    assert again == files and read == [] and set(again.sources.values()) == {"cache"}
    damaged = files.path("test_labels")
    content = bytearray(damaged.read_bytes())
    content[-5] ^= 0xFF  # in the gzip trailer: the same size, another content
    damaged.write_bytes(bytes(content))
    third = _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri())
    assert third.checksums == FASHION_SHA and third.sources["test_labels"].startswith("file://")
    assert sorted(read) == sorted([*ROLES, "test_labels"])  # all four, then the download
    read.clear()
    assert _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri()) == third and read == []


def test_data_dir_fashion_is_used_in_place(fashion_dir: Path, tmp_path: Path) -> None:
    files = _fetch("fashion-mnist", tmp_path / "cache", data_dir=str(fashion_dir))
    assert files.checksums == FASHION_SHA
    assert files.path("train_images") == fashion_dir / "train-images-idx3-ubyte.gz"
    assert not any((tmp_path / "cache").rglob("*.gz"))


def test_debian_folder_is_a_source(fashion_dir: Path, tmp_path: Path) -> None:
    files = _fetch("fashion-mnist", tmp_path / "cache", local_dirs=[fashion_dir])
    assert files.checksums == FASHION_SHA and set(files.sources.values()) == {"folder"}


MNIST_SHA = {fs.role: fs.sha256 for fs in get_dataset("mnist").files}


def test_mnist_data_dir_complete(
    mnist_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The complete MNIST folder verifies by content (train-images was recompressed)."""
    with caplog.at_level(logging.INFO):
        files = _fetch(
            "mnist", tmp_path / "cache", data_dir=str(mnist_dir), mirror=(tmp_path / "no").as_uri()
        )
    assert files.checksums == MNIST_SHA and set(files.sources.values()) == {"folder"}
    assert files.path("train_images") == mnist_dir / "train-images-idx3-ubyte.gz"
    assert "train-images-idx3-ubyte.gz: verified, from folder" in caplog.text
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # read in place


def test_mnist_file_mirror_caches_all_four(mnist_dir: Path, tmp_path: Path) -> None:
    """The real MNIST files come through a file:// mirror, verified and cached byte for byte."""
    cache = tmp_path / "cache"
    files = _fetch("mnist", cache, mirror=mnist_dir.as_uri())
    assert files.checksums == MNIST_SHA
    for role, name in ROLE_FILES.items():
        assert files.path(role) == cache / "mnist" / name
        assert (cache / "mnist" / name).read_bytes() == (mnist_dir / name).read_bytes()
    assert _leftovers(cache) == []


def test_mnist_tampered_training_images_are_not_cached(mnist_dir: Path, tmp_path: Path) -> None:
    """A mirror serving other training images of the right shape: one error, nothing cached."""
    import gzip

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ROLE_FILES.values():
        (mirror / name).write_bytes((mnist_dir / name).read_bytes())
    data = bytearray(gzip.decompress((mnist_dir / ROLE_FILES["train_images"]).read_bytes()))
    data[1000:1784] = bytes(784)  # one image blanked: right shape, wrong content
    (mirror / ROLE_FILES["train_images"]).write_bytes(gzip.compress(bytes(data), compresslevel=1))
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as info:
        _fetch("mnist", cache, mirror=mirror.as_uri())
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz: every source failed" in message
    assert "SHA-256" in message
    assert not (cache / "mnist" / ROLE_FILES["train_images"]).exists()
    assert _leftovers(cache) == []


def test_mnist_test_set_as_idx_folder(mnist_dir: Path, tmp_path: Path) -> None:
    folder = idx_folder_from_mnist_test(mnist_dir, tmp_path / "digits", n_train=8000)
    files = _fetch("idx", tmp_path / "cache", data_dir=str(folder))
    assert files.name == "idx" and files.n_classes == 10 and files.image_shape == (28, 28)
    assert files.path("test_images").parent == folder
    assert not (tmp_path / "cache").exists()  # nothing to cache for a local idx folder


def test_idx_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data_dir=FOLDER"):
        _fetch("idx", tmp_path)


def test_idx_counts_must_agree(mnist_dir: Path, tmp_path: Path) -> None:
    folder = idx_folder_from_mnist_test(mnist_dir, tmp_path / "digits")
    (folder / ROLE_FILES["test_labels"]).write_bytes(
        (folder / ROLE_FILES["train_labels"]).read_bytes()
    )
    with pytest.raises(IDXFormatError, match=r"2000 images but .* holds 8000 labels"):
        _fetch("idx", tmp_path / "cache", data_dir=str(folder))


def test_unusable_cache_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match="cannot be created"):
        _fetch("fashion-mnist", blocker)


def test_unavailable_mirror_is_retried_then_reported(fashion_dir: Path, tmp_path: Path) -> None:
    with serve(fashion_dir) as server, pytest.raises(FetchError) as info:
        _fetch("fashion-mnist", tmp_path / "cache", mirrors=[server.url("503"), server.url("404")])
    assert "HTTP 503" in str(info.value) and "HTTP 404" in str(info.value)
    assert info.value.transient  # worth retrying later (the Prefect task does)
    assert len([r for r in server.requests if r.startswith("/503/t10k-labels")]) == 2
    assert _leftovers(tmp_path / "cache") == []


def test_concurrent_fetches_share_the_cache(fashion_dir: Path, tmp_path: Path) -> None:
    """Two runs downloading into one cache both end with complete, verified files."""
    cache = tmp_path / "cache"
    results: list[object] = []
    with serve(fashion_dir) as server:

        def run() -> None:
            try:
                results.append(_fetch("fashion-mnist", cache, mirrors=[server.url("good")]))
            except Exception as exc:  # reported below
                results.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert len(results) == 2
    for result in results:
        assert not isinstance(result, Exception), result
        assert result.checksums == FASHION_SHA  # type: ignore[attr-defined]
    assert _leftovers(cache) == []


def test_download_logs_progress(
    fashion_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test-download")
    with serve(fashion_dir) as server, caplog.at_level(logging.INFO, logger="test-download"):
        url = server.url("good") + "train-labels-idx1-ubyte.gz"
        part = download(url, tmp_path, logger=log, progress_every=0.0)
    assert part.parent == tmp_path and part.name.endswith(".part")
    assert part.read_bytes() == (fashion_dir / "train-labels-idx1-ubyte.gz").read_bytes()
    assert "of 0.0 MB (100%)" in caplog.text and f"downloaded {url}" in caplog.text


def test_download_times_out_and_cleans_up(fashion_dir: Path, tmp_path: Path) -> None:
    with serve(fashion_dir) as server, pytest.raises(DownloadFailed, match="timed out") as info:
        url = server.url("slow") + "train-labels-idx1-ubyte.gz"
        download(url, tmp_path, logger=logging.getLogger("t"), timeout=0.3, retries=0)
    assert info.value.transient and list(tmp_path.iterdir()) == []


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SleepCounter:
    """Records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/mnist/t10k-labels-idx1-ubyte.gz", "Connection refused"),
        ("http://mnist-flow.invalid/mnist/t10k-labels-idx1-ubyte.gz", "cannot open"),  # RFC 2606
    ],
)
def test_unreachable_host_is_not_retried(tmp_path: Path, url: str, reason: str) -> None:
    """A refused connection or a name that does not resolve fails at once, without backoff."""
    sleep = SleepCounter()
    with pytest.raises(DownloadFailed, match=reason) as info:
        download(
            url.format(port=closed_port()),
            tmp_path,
            logger=logging.getLogger("t"),
            retries=2,
            sleep=sleep,
        )
    assert sleep.delays == [] and list(tmp_path.iterdir()) == []
    assert not info.value.transient and info.value.unreachable
    assert "Errno" not in str(info.value)


def test_transient_errors_keep_their_backoff(fashion_dir: Path, tmp_path: Path) -> None:
    sleep = SleepCounter()
    with serve(fashion_dir) as server, pytest.raises(DownloadFailed, match="HTTP 503") as info:
        url = server.url("503") + "train-labels-idx1-ubyte.gz"
        download(url, tmp_path, logger=logging.getLogger("t"), retries=2, sleep=sleep)
    assert info.value.transient and not info.value.unreachable
    assert sleep.delays == [1.0, 2.0] and len(server.requests) == 3


def test_unreachable_mirror_is_skipped_for_the_other_files(
    fashion_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sleep = SleepCounter()
    refused = f"http://127.0.0.1:{closed_port()}/fashion/"
    with serve(fashion_dir) as server, caplog.at_level(logging.WARNING):
        files = _fetch(
            "fashion-mnist", tmp_path / "cache", mirrors=[refused, server.url("good")], sleep=sleep
        )
    assert files.checksums == FASHION_SHA and sleep.delays == []
    assert set(files.sources.values()) == {server.url("good") + f for f in ROLE_FILES.values()}
    assert caplog.text.count("Connection refused") == 1  # tried for the first file only
    assert "not trying this source for the other files" in caplog.text


def test_offline_fails_at_once_with_one_readable_error(tmp_path: Path) -> None:
    """No mirror reachable: one non-transient error, short enough for one line of the CLI."""
    sleep = SleepCounter()
    port = closed_port()
    mirrors = [f"http://127.0.0.1:{port}/a/", f"http://127.0.0.1:{port}/b/"]
    with pytest.raises(FetchError) as info:
        _fetch("mnist", tmp_path / "cache", mirrors=mirrors, retries=2, sleep=sleep)
    assert not info.value.transient and sleep.delays == []  # neither backoff nor task retries
    message = str(info.value)
    assert "\n" not in message  # one line, also in logs and in the Prefect UI
    assert (
        "could not fetch dataset 'mnist': all 4 files: every source failed: "
        f"- {mirrors[0]}, {mirrors[1]}: cannot open: Connection refused. Pass data_dir="
    ) in message
    assert "data_dir=FOLDER" in message and "mirror=URL" in message  # named by each front end
    assert "not in the cache" not in message
    assert len(" ".join(message.split())) < 400  # the CLI's one-line limit


def test_fetch_task_does_not_retry_an_unreachable_host(prefect_harness, tmp_path: Path) -> None:
    """The Prefect task retries transient failures only: offline, it fails on its first run."""
    from prefect import flow

    from tasks.fetch import fetch

    mirror = f"http://127.0.0.1:{closed_port()}/digits/"

    @flow
    def fetch_flow() -> tuple[bool, UUID | None, str]:
        state = fetch(dataset="idx", mirror=mirror, cache_dir=str(tmp_path), return_state=True)
        error = state.result(raise_on_failure=False)
        return state.is_failed(), state.state_details.task_run_id, repr(error)

    failed, task_run_id, error = fetch_flow()
    assert failed and task_run_id is not None
    assert error.startswith("FetchError(") and "Connection refused" in error
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + 30  # the server records task runs from their events, later
    with get_client(sync_client=True) as client:
        while True:
            try:
                task_run = client.read_task_run(task_run_id)
                break
            except ObjectNotFound:
                assert time.monotonic() < deadline, "the task run was never recorded"
                time.sleep(0.2)
    assert task_run.run_count == 1  # a transient failure would run again after 5 s


def _no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"a download was attempted: {args}")


def test_a_given_folder_is_the_only_source(
    fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing folder, or one without the files, fails naming it: no cache, no mirror."""
    cache = tmp_path / "cache"
    _fetch("fashion-mnist", cache, mirror=fashion_dir.as_uri())  # fills the cache
    monkeypatch.setattr("tasks.data.sources.download", _no_download)
    missing = tmp_path / "nonexistent" / "fashion-mnist"
    options = {"mirror": fashion_dir.as_uri(), "local_dirs": [fashion_dir]}
    with pytest.raises(DataError) as info:
        _fetch("fashion-mnist", cache, data_dir=str(missing), **options)
    assert str(info.value) == f"data_dir={missing}: no such directory"
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / ROLE_FILES["train_images"]).write_bytes(
        (fashion_dir / ROLE_FILES["train_images"]).read_bytes()
    )
    with pytest.raises(DataError) as info:
        _fetch("fashion-mnist", cache, data_dir=str(partial), **options)
    assert str(info.value).startswith(f"data_dir={partial}: no file named train-labels")
    assert not isinstance(info.value, FetchError)  # not "could not fetch": nothing else tried
