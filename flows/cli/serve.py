"""``mnist-flow serve``: the page and API of :mod:`flows.serve.app` under uvicorn.

With ``--workers N`` (N > 1) uvicorn's supervisor runs N worker processes on one listening
socket, so that the predictions, held to one core each by the GIL, use all the cores; each
worker builds its own app (:func:`build_app`) and follows the champion pointer itself, and
the corrections wait on disk where every worker sees them.
"""

from __future__ import annotations

import argparse
import functools
import socket
import sys
from typing import Any

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def add_parser(sub: argparse._SubParsersAction, formatter: Any) -> None:
    """Add ``serve`` to the subcommands."""
    p = sub.add_parser(
        "serve",
        help="serve the champion: a page to draw digits on and an HTTP API",
        description="Serve a web page (draw or upload a digit, see the prediction, record "
        "corrections) and an HTTP API (/docs) with the champion of --dataset, swapped in "
        "within seconds when a new one is promoted. Corrections become a data batch, as "
        "`mnist-flow data add` makes one.",
        formatter_class=formatter,
    )
    p.add_argument("--dataset", default="mnist", help="whose champion to serve")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--registry",
        dest="registry_dir",
        default=None,
        metavar="DIR",
        help="model registry folder (default: $MNIST_FLOW_REGISTRY, else the user data folder)",
    )
    source.add_argument("--model", help="serve this model .npz instead (never swapped)")
    p.add_argument(
        "--data-store",
        default=None,
        metavar="DIR",
        help="where submitted corrections become data versions (default: $MNIST_FLOW_DATA, "
        "else the user data folder)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 exposes the page and API to your network",
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes answering on the port: one uses one core (the GIL); N "
        "use N cores, each with its own copy of the model",
    )


def build_app(
    dataset: str, registry_dir: str | None, model: str | None, data_store: str | None
) -> Any:
    """The app of ``serve``'s options: a worker process calls it as uvicorn's app factory."""
    from flows.serve.app import create_app
    from flows.serve.model import ChampionSource, FixedSource
    from tasks.data.versions import DataStore
    from tasks.registry.store import Registry

    if model:
        source: Any = FixedSource(model)
    else:
        source = ChampionSource(Registry(registry_dir), dataset)
        source.refresh(force=True)
    return create_app(source, dataset=dataset, store=DataStore(data_store))


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` for the worker processes to share.

    Created with ``IPPROTO_TCP`` and ``TCP_NODELAY``: asyncio sets ``TCP_NODELAY`` on the
    connections it accepts only from a socket whose protocol is ``IPPROTO_TCP`` (the socket
    uvicorn binds for several workers has protocol 0), and Linux copies the option from the
    listening socket to the connections it accepts. Without it an answer's headers and body
    go out in two writes and the second waits for the client's delayed ACK (about 40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from tasks.errors import MnistFlowError

        raise MnistFlowError(f"--host {host} --port {port}: cannot listen there: {exc}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C or ``SIGTERM``, which stop every worker)."""
    import uvicorn

    from flows.serve.model import FixedSource
    from nn.errors import ConfigError
    from tasks.data.datasets import get_dataset

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be in 1-65535")
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be 1 or more")
    get_dataset(args.dataset)  # an unknown dataset fails here, naming it
    factory = functools.partial(
        build_app, args.dataset, args.registry_dir, args.model, args.data_store
    )
    if args.workers == 1:
        app = factory()
    else:
        if args.model:
            FixedSource(args.model)  # a bad model file fails here, before any worker starts
        sock = listening_socket(args.host, args.port)
    if args.host not in LOOPBACK:
        print(
            f"serving on {args.host}:{args.port}: anyone who can reach this machine can "
            "predict, and record and submit corrections (they become training data)",
            file=sys.stderr,
        )
    workers = f", {args.workers} worker processes" if args.workers > 1 else ""
    print(
        f"serving on http://{args.host}:{args.port}/ (API: /docs){workers}; Ctrl-C stops",
        file=sys.stderr,
    )
    options = {"log_level": "warning", "access_log": False}
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, workers=1, **options)
        return 0
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(factory, factory=True, workers=args.workers, **options)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
    return 0
