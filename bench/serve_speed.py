"""``mnist-flow serve`` under load: latency of one client, throughput of eight, memory.

Starts ``mnist-flow serve --model M --workers W`` (``--model``, else a 784-300-10 network
trained for one epoch on the mnist10k training split) on a free loopback port, then posts
280x280 dark-on-white PNGs of held-out MNIST digits (as the page's canvas sends them) to
``/api/predict``:

- one client, ``--n`` requests in a row: p50 / p99 / max latency in ms;
- ``--clients`` clients at once for ``--seconds``: predictions per second and errors;
- the server's resident memory after a warm-up and after ``--memory-requests`` requests.

The server's CPU and memory are those of all its processes (with ``--workers`` over 1, the
supervisor and its workers). ``--workers`` defaults to 2, one a core of the two-core machine
the target (200 predictions per second from eight clients) is set on; ``--workers 1`` is
the single-process server.

A client is one keep-alive HTTP/1.1 connection of the standard library's ``http.client``
posting each image as a multipart form (field ``image``, as the page does) and reading
the JSON answer; the clients are threads of this process. A heavier client (``httpx``,
about 2 ms of CPU a request against 0.4 ms) takes a share of the two cores the server
would use.

Example::

    python bench/serve_speed.py --n 500 --clients 8 --seconds 10 --memory-requests 10000
    python bench/serve_speed.py --workers 1   # one process
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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


def start(model: Path, port: int, workers: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "mnist-flow"), "serve", "--model", str(model)]
    command += ["--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
        finally:
            connection.close()
    process.kill()
    raise SystemExit("the server did not start")


def processes(server: subprocess.Popen) -> list[psutil.Process]:
    """The server's process and, with several workers, its worker processes."""
    parent = psutil.Process(server.pid)
    return [parent, *parent.children(recursive=True)]


def server_cpu(server: subprocess.Popen) -> float:
    """User + system CPU seconds of the server's processes."""
    return sum(sum(p.cpu_times()[:2]) for p in processes(server))


def server_rss(server: subprocess.Popen) -> float:
    """Resident memory of the server's processes, MB (pages shared between them counted in
    each: an upper bound)."""
    return sum(p.memory_info().rss for p in processes(server)) / 2**20


class Client:
    """One HTTP/1.1 keep-alive connection posting multipart ``image`` uploads, as a browser
    does; light (the standard library's ``http.client``), so that the clients take little
    of the CPU the server needs."""

    BOUNDARY = "----mnist-flow-bench"

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def predict(self, png: bytes) -> int:
        """Post one image to ``/api/predict``; its label, or -1 when the answer is not a 200."""
        body = b"".join(
            [
                f"--{self.BOUNDARY}\r\n".encode(),
                b'Content-Disposition: form-data; name="image"; filename="digit.png"\r\n',
                b"Content-Type: image/png\r\n\r\n",
                png,
                f"\r\n--{self.BOUNDARY}--\r\n".encode(),
            ]
        )
        headers = {"Content-Type": f"multipart/form-data; boundary={self.BOUNDARY}"}
        self.connection.request("POST", "/api/predict", body=body, headers=headers)
        response = self.connection.getresponse()
        answer = response.read()
        return json.loads(answer)["label"] if response.status == 200 else -1

    def close(self) -> None:
        self.connection.close()


def latency(port: int, images: list[bytes], n: int) -> list[float]:
    times = []
    client = Client(port)
    for i in range(n):
        t0 = time.perf_counter()
        assert client.predict(images[i % len(images)]) >= 0
        times.append((time.perf_counter() - t0) * 1000)
    client.close()
    return times


def throughput(port: int, images: list[bytes], clients: int, seconds: float) -> tuple[int, int]:
    done, errors = [0] * clients, [0] * clients
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        client = Client(port)
        i = k
        while time.monotonic() < stop:
            try:
                ok = client.predict(images[i % len(images)]) >= 0
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                client.close()
                client = Client(port)
            done[k] += ok
            errors[k] += not ok
            i += clients
        client.close()

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
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes (serve --workers; default 2)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_model(Path(tmp) / "model.npz")
        images = canvas_pngs(200)
        port = free_port()
        server = start(model, port, args.workers)
        try:
            print(f"mnist-flow serve --workers {args.workers}")
            throughput(port, images, args.clients, 2.0)  # warm-up, of every worker
            latency(port, images, 50)
            times = np.array(latency(port, images, args.n))
            p50, p99 = np.percentile(times, [50, 99])
            print(
                f"one client, {args.n} requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"max {times.max():.1f} ms"
            )
            cpu = server_cpu(server)
            done, errors = throughput(port, images, args.clients, args.seconds)
            cpu = server_cpu(server) - cpu
            print(
                f"{args.clients} clients (keep-alive http.client connections, one thread "
                f"each), {args.seconds:g} s: {done / args.seconds:.0f} predictions/s, "
                f"{errors} errors; the server used {1000 * cpu / max(done, 1):.1f} ms of CPU "
                f"a prediction ({100 * cpu / args.seconds:.0f} % of a core, all processes)"
            )
            before = server_rss(server)
            sent = 0
            client = Client(port)
            while sent < args.memory_requests:
                assert client.predict(images[sent % len(images)]) >= 0
                sent += 1
            client.close()
            after = server_rss(server)
            print(
                f"resident memory of the server's processes: {before:.0f} MB before, "
                f"{after:.0f} MB after "
                f"{args.memory_requests} more requests"
            )
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
