"""``mnist-flow serve``: the page and API of :mod:`flows.serve.app` under uvicorn."""

from __future__ import annotations

import argparse
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


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import uvicorn

    from flows.serve.app import create_app
    from flows.serve.model import ChampionSource, FixedSource
    from nn.errors import ConfigError
    from tasks.data.datasets import get_dataset
    from tasks.data.versions import DataStore
    from tasks.registry.store import Registry

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be in 1-65535")
    get_dataset(args.dataset)  # an unknown dataset fails here, naming it
    if args.model:
        source: Any = FixedSource(args.model)
    else:
        source = ChampionSource(Registry(args.registry_dir), args.dataset)
        source.refresh(force=True)
    app = create_app(source, dataset=args.dataset, store=DataStore(args.data_store))
    if args.host not in LOOPBACK:
        print(
            f"serving on {args.host}:{args.port}: anyone who can reach this machine can "
            "predict, and record and submit corrections (they become training data)",
            file=sys.stderr,
        )
    print(f"serving on http://{args.host}:{args.port}/ (API: /docs); Ctrl-C stops", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
