"""Every method, the authors' baselines included, on the synthetic tasks: test accuracy overall
and on the synergy subset (test samples both unimodal references get wrong), mean and 95% CI
over seeds, one shared recipe (``COMMON``) and each method's default knobs.

    PYTHONPATH=. nice -n 19 python benchmarks/baselines.py                 # 5 seeds, 3 tasks
    PYTHONPATH=. python benchmarks/baselines.py --smoke                    # seconds
    PYTHONPATH=. python benchmarks/baselines.py --tasks xor_pid --methods vanilla,synib,mla

One torch thread, runs one after another. The CI is the t interval of the mean over seeds
(mean +- t_{0.975, n-1} * sd / sqrt(n)). Writes all per-seed numbers to
benchmarks/results/baselines.json and prints one Markdown table per task.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before torch and numpy load

RESULTS = Path(__file__).resolve().parent / "results" / "baselines.json"
TASKS = ("xor_pid", "xor_spurious", "digits_pairs")
# The shared recipe: small MLPs, the same budget for every method. Method knobs stay at their
# defaults (synib: lambda 1, random feature-level swap mask; see README "Knobs").
COMMON: dict[str, Any] = {
    "encoder": "mlp", "hidden": 32, "encoder_layers": 1, "fusion_hidden": 32,
    "epochs": 20, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-5,
}  # fmt: skip
SMOKE: dict[str, Any] = {**COMMON, "epochs": 2, "hidden": 8, "fusion_hidden": 8}
SMOKE_DATA = {"n_train": 64, "n_val": 32, "n_test": 64}
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95% t interval); half-width 0 for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    t = T_975.get(len(values) - 1, 1.96)
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def run_task(task: str, methods: list[str], seeds: list[int], smoke: bool) -> dict[str, Any]:
    import torch

    from synib_core.config import config_from_knobs
    from synib_core.data import GENERATORS
    from synib_core.training import fit, train_references

    torch.set_num_threads(1)
    config = config_from_knobs(SMOKE if smoke else COMMON)
    params = SMOKE_DATA if smoke and task != "digits_pairs" else {}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for seed in seeds:
        data = GENERATORS[task](seed=seed, **params)
        refs = train_references(config, data, seed=seed)
        for method in methods:
            start = time.perf_counter()
            result = fit(config, data, method=method, seed=seed, references=refs)
            metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
            runs[method].append({"seed": seed, "seconds": time.perf_counter() - start, **metrics})
            print(f"{task} seed {seed} {method}: test_acc {metrics['test_acc']:.3f}, "
                  f"synergy_acc {metrics.get('synergy_acc', float('nan')):.3f}", file=sys.stderr)  # fmt: skip
    return runs


def table(task: str, runs: dict[str, list[dict[str, float]]]) -> list[str]:
    seeds = len(next(iter(runs.values())))
    lines = [
        f"**{task}** ({seeds} seeds; mean [95% CI])",
        "",
        "| method | test_acc | synergy_acc | synergy_n | s per run |",
        "|---|---|---|---|---|",
    ]
    for method, rows in runs.items():
        cells = []
        for metric in ("test_acc", "synergy_acc"):
            values = [r[metric] for r in rows if metric in r and not math.isnan(r[metric])]
            if not values:
                cells.append("-")
                continue
            mean, half = interval(values)
            cells.append(f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]")
        n = statistics.fmean(r.get("synergy_n", 0.0) for r in rows)
        seconds = statistics.fmean(r["seconds"] for r in rows)
        lines.append(f"| {method} | {cells[0]} | {cells[1]} | {n:.0f} | {seconds:.1f} |")
    return lines


def main() -> int:
    from synib_core.config import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data, 2 epochs, 2 seeds")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    tasks = ["xor_spurious"] if args.smoke else args.tasks.split(",")
    seeds = [0, 1] if args.smoke else [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    results = {task: run_task(task, methods, seeds, args.smoke) for task in tasks}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"recipe": COMMON, "results": results}, indent=1) + "\n")
    for task, runs in results.items():
        print("\n".join(table(task, runs)))
        print()
    recipe = ", ".join(f"{k}={v}" for k, v in (SMOKE if args.smoke else COMMON).items())
    print(
        f"Recipe for every method: {recipe}; method knobs at their defaults; selection by val_acc."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
