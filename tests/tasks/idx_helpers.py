"""Helpers of the data tests: write IDX files and serve a folder over loopback HTTP."""

from __future__ import annotations

import gzip
import shutil
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from tasks.data.idx import read_idx
from tests.loopback import running

ROLE_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Return the IDX encoding of a uint8 array of 1 or 3 dimensions."""
    magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool | None = None) -> Path:
    """Write ``array`` as IDX, gzip-compressed when ``gz`` (default: when ``path`` ends in .gz)."""
    data = idx_bytes(array)
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path.write_bytes(data)
    return path


def gunzip_to(src: Path, dest: Path) -> Path:
    """Write the decompressed content of ``src`` to ``dest``."""
    with gzip.open(src, "rb") as f, open(dest, "wb") as out:
        shutil.copyfileobj(f, out)
    return dest


def idx_folder_from_mnist_test(
    mnist_dir: Path, dest: Path, n_train: int = 8000, n_test: int | None = None
) -> Path:
    """Make an IDX folder of the real MNIST test set: ``n_train`` images to train, the next
    ``n_test`` (default: the rest) to test."""
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    end = None if n_test is None else n_train + n_test
    dest.mkdir(parents=True, exist_ok=True)
    write_idx(dest / ROLE_FILES["train_images"], images[:n_train])
    write_idx(dest / ROLE_FILES["train_labels"], labels[:n_train])
    write_idx(dest / ROLE_FILES["test_images"], images[n_train:end])
    write_idx(dest / ROLE_FILES["test_labels"], labels[n_train:end])
    return dest


class _Handler(BaseHTTPRequestHandler):
    """Serves ``/<mode>/<file>`` from the root; modes: good, corrupt, truncate, slow, 404, 503."""

    def do_GET(self) -> None:
        server: MirrorServer = self.server  # type: ignore[assignment]
        server.requests.append(self.path)
        mode, _, name = self.path.strip("/").partition("/")
        path = server.root / name
        if mode == "slow":
            time.sleep(server.delay)
        if mode == "503":
            self.send_error(503, "Service Unavailable")
            return
        if mode == "404" or not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        if mode == "corrupt":
            middle = len(data) // 2
            data = (
                data[:middle]
                + bytes(b ^ 0xFF for b in data[middle : middle + 64])
                + data[middle + 64 :]
            )
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)

    def handle(self) -> None:
        """Serve one request; a client that hung up (timeout test) is not an error."""
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


class MirrorServer(ThreadingHTTPServer):
    """A loopback HTTP server over a folder, recording the paths requested."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests: list[str] = []
        self.delay = 1.0  # seconds a "slow" mirror waits before answering

    def url(self, mode: str) -> str:
        """Base URL of the mirror behaving as ``mode``."""
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/"


@contextmanager
def serve(root: Path) -> Iterator[MirrorServer]:
    """Serve ``root`` on 127.0.0.1 (free port) in a thread for the duration of the block."""
    server = MirrorServer(root)
    with running(server):
        yield server
