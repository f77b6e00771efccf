"""Reference experiments of docs/METHOD.md, run with synib_core alone.

    python benchmarks/reference_experiments.py xor_spurious [--alphas 0,0.4,0.8,1,2] [--seeds 0,1,2]
    python benchmarks/reference_experiments.py xor_pid [--seeds 0,1,2]
    python benchmarks/reference_experiments.py digits [--seeds 0,1,2]
    add --smoke for a seconds-long run of the same code path (1 seed, few epochs)

Each run writes benchmarks/results/<experiment>.json (all per-seed numbers) and prints a Markdown
table of mean +- std over seeds. Runs go through ``synib_core.fit`` exactly as the CLI and the
worker call it; the recipes are the paper's (docs/METHOD.md) unless a comment says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# The paper's models feed encoder outputs to the fusion head as they are (no LayerNorm) and use
# input-level masks, so every arm (vanilla included, for the same architecture) sets
# feature_norm=none and mask_level=input. Pass --feature-norm layernorm to measure our default.
XOR_SPURIOUS_COMMON: dict[str, Any] = {
    "feature_norm": "none",
    "mask_level": "input",
    "encoder": "mlp",
    "hidden": 16,
    "encoder_layers": 1,
    "fusion": "concat_mlp",
    "fusion_hidden": 32,
    "fusion_layers": 1,
    "w_uni": 0.05,
    "epochs": 100,
    "batch_size": 128,
    "optimizer": "adam",
}
XOR_SPURIOUS_VANILLA = {"lr": 1e-2, "weight_decay": 1e-3}
XOR_SPURIOUS_SYNIB = {
    "lr": 3e-4,
    "weight_decay": 1e-5,
    "lambda": 10.0,
    "mask_level": "input",
    "fill": "noise",
    "penalty": "kl_uniform",
}
# Mask settings the recipe leaves open are the authors' archived best for this task
# (kkontras/SynIB scripts/analysis/xor_spurious_pub.py): random mask_prob 0.4; learned gate
# 50 steps at lr 3.0, sparsity 0.03, hard threshold, lambda ramped over 20 epochs.
XOR_SPURIOUS_ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "vanilla": ("vanilla", XOR_SPURIOUS_VANILLA),
    "synib_random": ("synib", {**XOR_SPURIOUS_SYNIB, "mask": "random", "mask_prob": 0.4}),
    "synib_oracle": ("synib", {**XOR_SPURIOUS_SYNIB, "mask": "oracle"}),
    "synib_learned": (
        "synib",
        {
            **XOR_SPURIOUS_SYNIB,
            "mask": "learned",
            "mask_steps": 50,
            "mask_lr": 3.0,
            "mask_sparsity": 0.03,
            "mask_hard": True,
            "warmup_epochs": 20,
        },
    ),
}

XOR_PID_COMMON: dict[str, Any] = {
    "feature_norm": "none",
    "mask_level": "input",
    "encoder": "mlp",
    "hidden": 1024,
    "encoder_layers": 2,
    "fusion": "concat_mlp",
    "fusion_hidden": 128,
    "fusion_layers": 2,
    "w_uni": 1.0,
    "uni_detach": True,  # the paper trains its unimodal heads on detached encoder outputs
    "epochs": 30,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 3e-4,
    "weight_decay": 1e-5,
}
XOR_PID_SYNIB = {"lambda": 10.0, "penalty": "kl_uniform", "mask_level": "input", "fill": "noise"}
XOR_PID_ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "vanilla": ("vanilla", {}),
    "synib_random": ("synib", {**XOR_PID_SYNIB, "mask": "random", "mask_prob": 0.5}),
    "synib_oracle": ("synib", {**XOR_PID_SYNIB, "mask": "oracle"}),
}

# digits_pairs: no paper recipe; a small MLP on the two 64-pixel views, same budget for both arms.
DIGITS_COMMON: dict[str, Any] = {
    "encoder": "mlp",
    "hidden": 128,
    "encoder_layers": 2,
    "fusion": "concat_mlp",
    "fusion_hidden": 128,
    "fusion_layers": 1,
    "w_uni": 0.0,
    "epochs": 40,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 1e-5,
}
DIGITS_ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "vanilla": ("vanilla", {}),
    "synib_random": ("synib", {"lambda": 1.0, "mask": "random", "mask_prob": 0.5}),
    "synib_full": ("synib", {"lambda": 1.0, "mask": "full"}),
}


def _run_one(task: dict[str, Any]) -> dict[str, Any]:
    """One (dataset, arm, seed) training run in a worker process with one torch thread."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from synib_core.config import config_from_knobs
    from synib_core.data import GENERATORS
    from synib_core.training import fit, train_references

    torch.set_num_threads(1)
    data = GENERATORS[task["generator"]](seed=task["data_seed"], **task["data_params"])
    knobs = {**task["common"], **task["knobs"]}
    if task.get("feature_norm"):
        knobs["feature_norm"] = task["feature_norm"]
    if task["smoke"]:
        knobs["epochs"] = min(int(knobs["epochs"]), 3)
    config = config_from_knobs(knobs)
    started = time.perf_counter()
    refs = train_references(config_from_knobs({**knobs, "lambda": 0.0}), data, seed=task["seed"])
    result = fit(config, data, method=task["method"], seed=task["seed"], references=refs)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    # The authors report the last epoch; we select by validation accuracy: keep both.
    metrics["final_epoch_test_acc"] = float(result.history[-1]["test_acc"])
    return {
        **task,
        "metrics": metrics,
        "best_epoch": result.best_epoch,
        "seconds": time.perf_counter() - started,
    }


def _tasks(args: argparse.Namespace) -> list[dict[str, Any]]:
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.smoke:
        seeds = seeds[:1]
    tasks: list[dict[str, Any]] = []
    if args.experiment == "xor_spurious":
        alphas = [float(a) for a in args.alphas.split(",")]
        for alpha in alphas:
            for arm, (method, knobs) in XOR_SPURIOUS_ARMS.items():
                for seed in seeds:
                    params: dict[str, Any] = {"alpha": alpha}
                    if args.smoke:
                        params["n_test"] = 2000
                    tasks.append(
                        {
                            "generator": "xor_spurious",
                            "data_params": params,
                            "data_seed": seed,
                            "arm": arm,
                            "method": method,
                            "common": XOR_SPURIOUS_COMMON,
                            "knobs": knobs,
                            "seed": seed,
                            "smoke": args.smoke,
                            "alpha": alpha,
                        }
                    )
    else:
        generator = "xor_pid" if args.experiment == "xor_pid" else "digits_pairs"
        arms = XOR_PID_ARMS if args.experiment == "xor_pid" else DIGITS_ARMS
        common = XOR_PID_COMMON if args.experiment == "xor_pid" else DIGITS_COMMON
        for arm, (method, knobs) in arms.items():
            for seed in seeds:
                tasks.append(
                    {
                        "generator": generator,
                        "data_params": dict(args.data_params),
                        "data_seed": seed,
                        "arm": arm,
                        "method": method,
                        "common": common,
                        "knobs": knobs,
                        "seed": seed,
                        "smoke": args.smoke,
                    }
                )
    return tasks


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def _table(results: list[dict[str, Any]], experiment: str) -> str:
    arms = list(dict.fromkeys(r["arm"] for r in results))
    if experiment == "xor_spurious":
        alphas = sorted({r["alpha"] for r in results})
        lines: list[str] = []
        for key, title in (
            ("test_acc", "the selected epoch (best val_acc)"),
            ("final_epoch_test_acc", "the last epoch"),
        ):
            lines += [
                f"\nTest accuracy at {title}:\n",
                "| method | " + " | ".join(f"alpha={a:g}" for a in alphas) + " |",
                "|---|" + "---|" * len(alphas),
            ]
            for arm in arms:
                rows = [r for r in results if r["arm"] == arm]
                cells = [
                    _mean_std([r["metrics"][key] for r in rows if r["alpha"] == a]) for a in alphas
                ]
                lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
    group_keys = sorted({k for r in results for k in r["metrics"] if k.startswith("group_")})
    cols = ["test_acc", "final_epoch_test_acc", *group_keys, "synergy_acc", "synergy_n"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for arm in arms:
        rows = [r for r in results if r["arm"] == arm]
        cells = [_mean_std([r["metrics"][c] for r in rows if c in r["metrics"]]) for c in cols]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=["xor_spurious", "xor_pid", "digits"])
    parser.add_argument("--alphas", default="0,0.4,0.8,1.0,2.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--feature-norm",
        choices=["layernorm", "none"],
        default=None,
        help="override the recipe's feature_norm for every arm",
    )
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument("--arms", default="", help="comma-separated subset of the arms to run")
    parser.add_argument(
        "--data-param",
        dest="data_params",
        action="append",
        default=[],
        type=_param,
        metavar="KEY=VALUE",
        help="generator parameter for xor_pid / digits (repeatable)",
    )
    args = parser.parse_args(argv)
    tasks = _tasks(args)
    if args.arms:
        tasks = [t for t in tasks if t["arm"] in set(args.arms.split(","))]
    for task in tasks:
        task["feature_norm"] = args.feature_norm
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for i, result in enumerate(pool.map(_run_one, tasks), start=1):
            results.append(result)
            m = result["metrics"]
            print(
                f"[{i}/{len(tasks)}] {result['arm']} seed={result['seed']}"
                f"{' alpha=' + str(result['alpha']) if 'alpha' in result else ''}"
                f" test_acc={m['test_acc']:.3f} synergy_acc={m.get('synergy_acc', float('nan')):.3f}"
                f" ({result['seconds']:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.experiment + ("_smoke" if args.smoke else "") + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    print(_table(results, args.experiment))
    print(
        f"\n{len(tasks)} runs in {time.perf_counter() - started:.0f} s "
        f"({args.workers} processes, 1 torch thread each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
