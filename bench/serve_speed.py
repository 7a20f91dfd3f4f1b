"""``mnist-flow serve`` under load: latency of one client, throughput of eight, memory.

Starts ``mnist-flow serve --model M`` (``--model``, else a 784-300-10 network trained for
one epoch on the mnist10k training split) on a free loopback port, then posts 280x280
dark-on-white PNGs of held-out MNIST digits (as the page's canvas sends them) to
``/api/predict``:

- one client, ``--n`` requests in a row: p50 / p99 / max latency in ms;
- ``--clients`` clients at once for ``--seconds``: predictions per second and errors;
- the server's resident memory after a warm-up and after ``--memory-requests`` requests.

Example::

    python bench/serve_speed.py --n 500 --clients 8 --seconds 10 --memory-requests 10000
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from accuracy import mnist10k_split
from PIL import Image
from threadpoolctl import threadpool_limits

from nn.io import save_model
from nn.model import MLP
from nn.train import TrainConfig, train
from tasks.data.scaling import pixel_stats, prepare_images


def train_model(path: Path) -> Path:
    X_train, y_train, _, _ = mnist10k_split()
    mean, std = pixel_stats(X_train)
    preprocessing = {"standardize": True, "mean": mean, "std": std}
    rng = np.random.default_rng(0)
    model = MLP.create((784, 300, 10), rng=rng)
    with threadpool_limits(1):
        X = prepare_images(X_train, preprocessing)
        train(model, X, y_train.astype(np.int64), TrainConfig(epochs=1, lr=0.05), rng=rng)
    save_model(path, model, {"preprocessing": preprocessing, "dataset": {"name": "mnist"}})
    return path


def canvas_pngs(n: int) -> list[bytes]:
    """``n`` held-out digits as the page sends them: 280x280, dark ink on white, PNG."""
    _, _, X_test, _ = mnist10k_split()
    out = []
    for digit in X_test[:n]:
        buffer = io.BytesIO()
        Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR).save(
            buffer, format="PNG"
        )
        out.append(buffer.getvalue())
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(model: Path, port: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "mnist-flow"), "serve", "--model", str(model)]
    process = subprocess.Popen([*command, "--port", str(port)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def post(client: httpx.Client, url: str, data: bytes) -> int:
    files = {"image": ("digit.png", data, "image/png")}
    return client.post(url, files=files).status_code


def latency(url: str, images: list[bytes], n: int) -> list[float]:
    times = []
    with httpx.Client() as client:
        for i in range(n):
            t0 = time.perf_counter()
            assert post(client, url, images[i % len(images)]) == 200
            times.append((time.perf_counter() - t0) * 1000)
    return times


def throughput(url: str, images: list[bytes], clients: int, seconds: float) -> tuple[int, int]:
    done, errors = [0] * clients, [0] * clients
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        with httpx.Client() as client:
            i = k
            while time.monotonic() < stop:
                ok = post(client, url, images[i % len(images)]) == 200
                done[k] += ok
                errors[k] += not ok
                i += clients

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model .npz to serve (default: train one)")
    parser.add_argument("--n", type=int, default=500, help="requests of the one client")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--memory-requests", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_model(Path(tmp) / "model.npz")
        images = canvas_pngs(200)
        port = free_port()
        url = f"http://127.0.0.1:{port}/api/predict"
        server = start(model, port)
        try:
            rss = psutil.Process(server.pid)
            latency(url, images, 50)  # warm-up
            times = np.array(latency(url, images, args.n))
            p50, p99 = np.percentile(times, [50, 99])
            print(
                f"one client, {args.n} requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"max {times.max():.1f} ms"
            )
            done, errors = throughput(url, images, args.clients, args.seconds)
            print(
                f"{args.clients} clients, {args.seconds:g} s: {done / args.seconds:.0f} "
                f"predictions/s, {errors} errors"
            )
            before = rss.memory_info().rss / 2**20
            sent = 0
            with httpx.Client() as client:
                while sent < args.memory_requests:
                    assert post(client, url, images[sent % len(images)]) == 200
                    sent += 1
            after = rss.memory_info().rss / 2**20
            print(
                f"resident memory: {before:.0f} MB before, {after:.0f} MB after "
                f"{args.memory_requests} more requests"
            )
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
