"""The ``mnist-flow`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``mnist-flow``."""
    parser = argparse.ArgumentParser(
        prog="mnist-flow",
        description="Train and tune a from-scratch numpy MLP on MNIST with Prefect.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
