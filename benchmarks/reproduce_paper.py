"""The authors' synthetic numbers, reproduced with recipes selected WITHOUT looking at test.

    python benchmarks/reproduce_paper.py xor_spurious [--seeds 0,1,2,3,4]
    python benchmarks/reproduce_paper.py xor_pid [--seeds 0,1,2,3,4]

xor_spurious (alpha 1; authors: random 67.7 ± 10, learned 81.9, oracle 93): the paper's recipe
(docs/METHOD.md section 9; input-level masks, noise fill, feature_norm none) with a small grid
over what the paper leaves open or tunes per dataset (mask_prob, lr, lambda; for the learned
mask lr, lambda and its direction). Selection, of the epoch and of the grid point, by mean
validation accuracy over seeds, with two validation splits:

- ``shift``: a validation split drawn like the test split (``val_alpha=0``: no shortcut). It is
  held out (never the test samples) but encodes the knowledge that the shortcut disappears at
  test; without that knowledge no rule can tell a shortcut model from a synergy model here;
- ``shortcut``: the paper's validation split (carries the shortcut like train): every run
  scores about 1.0 on it, so it cannot select, and the selected epoch is an early, shortcut one.

xor_pid (authors: synergy group 0.88 random, 0.88-0.91 oracle; overall about 0.95): the paper's
recipe with ``uni_detach`` (heads on detached features, as the paper) and a grid over lambda and
mask_prob, selected by mean validation accuracy (the validation split is in-distribution here).

Writes benchmarks/results/reproduce_<task>.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

XOR_COMMON: dict[str, Any] = {
    "feature_norm": "none", "mask_level": "input", "encoder": "mlp", "hidden": 16,
    "encoder_layers": 1, "fusion_hidden": 32, "fusion_layers": 1, "w_uni": 0.05,
    "epochs": 100, "batch_size": 128, "weight_decay": 1e-5, "penalty": "kl_uniform",
    "fill": "noise",
}  # fmt: skip
XOR_ARMS: dict[str, tuple[str, dict[str, Any], dict[str, tuple[Any, ...]]]] = {
    # arm: (method, fixed knobs, grid)
    "vanilla": ("vanilla", {"lr": 1e-2, "weight_decay": 1e-3}, {}),
    "random": (
        "synib",
        {"mask": "random"},
        {"mask_prob": (0.4, 0.7, 0.9), "lr": (3e-4, 3e-3), "lambda": (1.0, 10.0)},
    ),
    "learned": (
        "synib",
        {
            "mask": "learned",
            "mask_steps": 50,
            "mask_lr": 3.0,
            "mask_sparsity": 0.03,
            "mask_hard": True,
            "warmup_epochs": 20,
        },
        # keep_unimodal (the default direction); destroy_unimodal scored lower on validation in
        # an exploratory run (0.59-0.87 against 0.66-1.00) and is left out to save time
        {"lr": (3e-4, 3e-3), "lambda": (1.0, 10.0)},
    ),
    "oracle": ("synib", {"mask": "oracle", "lr": 3e-4, "lambda": 10.0}, {}),
}
PID_COMMON: dict[str, Any] = {
    "feature_norm": "none", "mask_level": "input", "encoder": "mlp", "hidden": 1024,
    "encoder_layers": 2, "fusion_hidden": 128, "fusion_layers": 2, "w_uni": 1.0,
    "uni_detach": True, "epochs": 30, "batch_size": 64, "lr": 3e-4, "weight_decay": 1e-5,
    "penalty": "kl_uniform", "fill": "noise",
}  # fmt: skip
PID_ARMS: dict[str, tuple[str, dict[str, Any], dict[str, tuple[Any, ...]]]] = {
    "vanilla": ("vanilla", {}, {}),
    "random": ("synib", {"mask": "random"}, {"lambda": (3.0, 10.0, 30.0), "mask_prob": (0.5,)}),
}


def _train(task: str, common: dict[str, Any], arm: tuple, seeds: list[int], val: str) -> list:
    import torch

    from synib_core.config import config_from_knobs
    from synib_core.data import make_dataset
    from synib_core.training import fit

    torch.set_num_threads(1)
    method, fixed, grid = arm
    params: dict[str, Any] = {"alpha": 1.0, "val_alpha": 0.0 if val == "shift" else -1.0}
    datas = {s: make_dataset(task, s, **(params if task == "xor_spurious" else {})) for s in seeds}
    rows = []
    for combo in itertools.product(*grid.values()) if grid else [()]:
        point = dict(zip(grid, combo, strict=True))
        config = config_from_knobs({**common, **fixed, **point})
        for seed in seeds:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fit(config, datas[seed], method=method, seed=seed)
            metrics = {k: float(v) for k, v in result.metrics.items()}
            metrics["last_epoch_test_acc"] = float(result.history[-1]["test_acc"])
            rows.append({"point": point, "seed": seed, "metrics": metrics})
            print(
                f"{task} {val} {method} {fixed.get('mask', '')} {point} seed {seed}: val "
                f"{metrics['val_acc']:.3f} test {metrics['test_acc']:.3f} "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _select(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The point with the highest mean val_acc over seeds (first on ties) and its rows."""
    points: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        points.setdefault(json.dumps(r["point"], sort_keys=True), []).append(r)
    label = max(points, key=lambda k: np.mean([r["metrics"]["val_acc"] for r in points[k]]))
    return json.loads(label), points[label]


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=("xor_spurious", "xor_pid"))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--arms", default="")
    parser.add_argument("--vals", default="shift,shortcut", help="xor_spurious validation splits")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = XOR_ARMS if args.task == "xor_spurious" else PID_ARMS
    common = XOR_COMMON if args.task == "xor_spurious" else PID_COMMON
    chosen = [a for a in arms if not args.arms or a in args.arms.split(",")]
    vals = tuple(args.vals.split(",")) if args.task == "xor_spurious" else ("in_distribution",)
    results = {
        val: {arm: _train(args.task, common, arms[arm], seeds, val) for arm in chosen}
        for val in vals
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "_" + "_".join(chosen) if args.arms else ""
    (RESULTS / f"reproduce_{args.task}{tag}.json").write_text(json.dumps(results, indent=1))
    cols = ["test_acc", "last_epoch_test_acc", "val_acc"]
    if args.task == "xor_pid":
        cols += ["group_synergy_acc", "group_redundant_acc"]
    for val, by_arm in results.items():
        print(f"\n{args.task}, validation split: {val}; seeds {seeds}\n")
        print("| arm | selected point | " + " | ".join(cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for arm, rows in by_arm.items():
            point, best = _select(rows)
            cells = [_ms([r["metrics"][c] for r in best if c in r["metrics"]]) for c in cols]
            print(f"| {arm} | {point or '-'} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
