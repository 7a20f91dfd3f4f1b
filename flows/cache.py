"""``mnist-flow cache``: what the cache holds and its size; pruning it (:mod:`tasks.cache`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction, formatter: Any) -> None:
    """The ``mnist-flow cache`` subcommand."""
    from flows.params import describe
    from tasks.settings import DATA

    p = sub.add_parser(
        "cache",
        help="show what the cache holds and its size; prune it",
        description="List the cache's entries by kind with their size; with --older-than or "
        "--keep, remove entries first (a removed entry is made again when a run needs it).",
        formatter_class=formatter,
    )
    setting = DATA["cache_dir"]
    p.add_argument(setting.flag, dest=setting.name, metavar="DIR", help=describe(setting, None))
    p.add_argument(
        "--older-than", type=float, metavar="DAYS", help="remove entries unused for DAYS days"
    )
    p.add_argument("--keep", type=int, metavar="N", help="keep the N most recent of each kind")


def command(args: argparse.Namespace) -> int:
    """Prune (with ``--older-than`` or ``--keep``), then print what the cache holds."""
    from nn.errors import ConfigError
    from tasks.cache import format_summary, prune
    from tasks.data.datasets import resolve_cache_dir

    for flag, value in (("--older-than", args.older_than), ("--keep", args.keep)):
        if value is not None and not value >= 0:
            raise ConfigError(f"{flag}={value} must be >= 0")
    root = resolve_cache_dir(args.cache_dir)
    if args.older_than is not None or args.keep is not None:
        removed = prune(root, older_than=args.older_than, keep=args.keep)
        freed = sum(entry.bytes for entry in removed)
        print(f"removed {len(removed)} entries ({freed / 1e6:.1f} MB)")
    print(format_summary(root))
    return 0
