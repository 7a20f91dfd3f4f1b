"""The ``mnist-flow`` command line (:func:`main`).

Subcommands: ``run`` (the whole pipeline), ``train`` (one training run with given
hyperparameters), ``evaluate`` (a saved model on a test set), ``models`` (the
registry), ``predict`` (classify image files), ``data`` (add labelled images),
``cache`` (what the cache holds; prune it), ``alerts`` (a webhook called when a
retraining fails) and ``serve`` (the champion as a web page and an HTTP API).
User errors print ``mnist-flow: error: <message>`` on stderr and exit with 2 (usage or
configuration) or 1 (runtime: data, network, files); Ctrl-C with 130 and ``SIGTERM``
with 143, the flow run crashed (:mod:`flows.local.watchdog`).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import Any

from flows.cli.parser import EXIT_USAGE, PROG, build_parser, flag, spell

EXIT_RUNTIME = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


def error(message: str, code: int, limit: int = 800) -> int:
    """Print ``message`` as one line (long ones cut: the run's log has the details)."""
    line = " ".join(str(message).split())
    if len(line) > limit:
        line = line[: limit - 30].rstrip() + " ... (details in the log above)"
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


def worded(exc: BaseException) -> str:
    """The message of ``exc`` with the settings it names spelled as options (:func:`spell`)."""
    return exc.worded(spell) if hasattr(exc, "worded") else str(exc)


def _validation_message(exc: Any) -> str:
    """One line from a pydantic ValidationError, fields named as their options."""
    parts = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        loc = [str(item) for item in err.get("loc", ()) if not isinstance(item, int)]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if isinstance(cause, Exception) or not loc:
            parts.append(worded(cause) if isinstance(cause, Exception) else message)
        else:
            parts.append(f"{flag(loc[-1])}: {message} (got {err.get('input')!r})")
    return "; ".join(parts)


def imports_done() -> None:
    """Turn the garbage collector back on if :func:`main` turned it off, the objects made so
    far frozen (``gc.freeze``: never walked again, as they live as long as the process)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit status.

    Called as the program (``argv`` None), the garbage collector waits until the command's
    imports are done (:func:`imports_done`): the objects they create live as long as the
    process, and collections while importing Prefect walk them again and again.
    """
    if argv is None:
        gc.disable()
        atexit.register(gc.freeze)  # nor walk every object once more as the process ends
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary local server migrates a new database on first use: slow on a busy laptop.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return 0

    from pydantic import ValidationError

    from flows.cli.commands import dispatch
    from flows.cli.diskfull import disk_full_line
    from nn.errors import ConfigError
    from tasks.errors import MnistFlowError, SearchSpaceError

    try:
        return dispatch(args)
    except ValidationError as exc:
        return error(_validation_message(exc), EXIT_USAGE)
    except SearchSpaceError as exc:
        return error(f"--space: {exc}", EXIT_USAGE)
    except ConfigError as exc:
        return error(worded(exc), EXIT_USAGE)
    except MnistFlowError as exc:
        return error(disk_full_line(exc, args) or worded(exc), EXIT_RUNTIME)
    except OSError as exc:  # disk full, permissions, ... outside the project's own checks
        where = f"{exc.filename}: " if exc.filename else ""
        return error(disk_full_line(exc, args) or f"{where}{exc.strerror or exc}", EXIT_RUNTIME)
    except KeyboardInterrupt:
        return error("interrupted (Ctrl-C)", EXIT_INTERRUPTED)
