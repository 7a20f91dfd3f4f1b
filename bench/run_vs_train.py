"""The default ``mnist-flow run`` against the default ``mnist-flow train``, per seed.

Both commands run as child processes with a fresh cache, registry and Prefect home
(:func:`recipe_cli.run_train`), on the standard splits read from ``../shared/data``
(or ``$MNIST_FLOW_SHARED_DATA``). For every seed it prints each command's test accuracy
and wall time, and for ``run`` what the search kept (the recipe or a tuned trial), how
the final model started, and the search's share of the run's wall time (from the step
timings in ``metrics.json``). The final model of ``run`` trains on every training image
for the recipe's epochs, as ``train`` does, so the two compare like for like; when the
search keeps the recipe, both train the same model bit for bit (the printed SHA-256 of
the weights is the same).

Examples::

    python bench/run_vs_train.py --dataset mnist --seeds 0 1 2
    python bench/run_vs_train.py --dataset fashion-mnist --seeds 0 1 2 --commands run
    python bench/run_vs_train.py --dataset mnist -- --trials 4   # options for both commands
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recipe_cli import run_train


def describe_run(metrics: dict) -> str:
    """One line: what the search kept, how the final model started, the search's share."""
    search = metrics.get("search", {})
    choice = search.get("choice", {})
    timings = metrics.get("timings", {})
    share = timings.get("search", 0.0) / max(timings.get("total", 1.0), 1e-9)
    trials = search.get("trials", [])
    return (
        f"  search: {len(trials)} trial runs, {timings.get('search', 0):.0f} s = "
        f"{100 * share:.0f} % of the run's {timings.get('total', 0):.0f} s; kept "
        f"{choice.get('chosen')} ({choice.get('reason')}); final model "
        f"{search.get('final_start')}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the commands for every seed; print one line each and the means."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--commands", nargs="+", choices=("run", "train"), default=["run", "train"])
    parser.add_argument("extra", nargs="*", help="after --: more options for both commands")
    args = parser.parse_args(argv)
    accuracy: dict[str, list[float]] = {name: [] for name in args.commands}
    shares = []
    for seed in args.seeds:
        for command in args.commands:
            val_size = 0 if command == "train" else None
            result = run_train(args.dataset, seed, val_size, args.extra, command)
            metrics = result["metrics"]
            accuracy[command].append(result["test_accuracy"])
            print(f"$ {result['command']}")
            print(
                f"{args.dataset} seed {seed} {command}: test accuracy "
                f"{100 * result['test_accuracy']:.2f} % after {result['epochs']} final epochs "
                f"on {metrics['dataset']['n_train']} images, {result['seconds']:.0f} s wall, "
                f"weights {str(result['weights_sha256'])[:16]}",
                flush=True,
            )
            if command == "run":
                print(describe_run(metrics), flush=True)
                timings = metrics.get("timings", {})
                shares.append(timings.get("search", 0.0) / max(timings.get("total", 1.0), 1e-9))
                print("  choice: " + json.dumps(metrics["search"]["choice"], default=str))
    for command, values in accuracy.items():
        if values:
            v = 100 * np.asarray(values)
            spread = f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else ""
            print(f"{args.dataset} {command}: mean {v.mean():.2f}{spread} % over {len(v)} seeds")
    if shares:
        shown = ", ".join(f"{100 * share:.0f} %" for share in shares)
        print(f"search share of the run's wall time: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
