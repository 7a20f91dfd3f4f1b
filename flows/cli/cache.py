"""``mnist-flow cache``: what the cache holds and its size; pruning it (:mod:`tasks.cache`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: argparse._SubParsersAction, formatter: Any) -> None:
    """The ``mnist-flow cache`` subcommand."""
    from flows.params import DataParams, unset_text

    p = sub.add_parser(
        "cache",
        help="show what the cache holds and its size; prune it",
        description="List the cache's entries by kind with their size; with --older-than or "
        "--keep, remove entries first (a removed entry is made again when a run needs it).",
        formatter_class=formatter,
    )
    field = DataParams.model_fields["cache_dir"]
    help_text = f"{field.description} (default: {unset_text(field)})"
    p.add_argument("--cache-dir", dest="cache_dir", metavar="DIR", help=help_text)
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
