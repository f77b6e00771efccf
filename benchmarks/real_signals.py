"""The comparison table of docs/METHOD.md: every method on the real-signal and synthetic tasks.

    python benchmarks/real_signals.py run [--tasks ...] [--families ...] [--seeds 0,1,2,3,4]
    python benchmarks/real_signals.py report [--sweep 0.1,1,10]

``run`` trains, through ``synib_core.training.sweep.run_sweep`` (the service's rule), on each
task (built-in generator, default parameters, data seed 0) and each configuration family:

- ``default``: nothing set but the dataset, the seeds and the epochs (30, the default): every
  method, SynIB and masking_only over the lambda grid ``GRID``;
- ``input_swap``: the input-level configuration (``mask_level=input``, ``feature_norm=none``,
  random mask 0.5, swap fill), vanilla and SynIB over ``GRID``;
- ``input_noise``: the same with the noise fill (the paper's input-level fill);
- ``input_swap_layernorm``: issue #19's failing configuration, input-level with the LayerNorm.

Every run's metrics and test predictions go to benchmarks/results/real_signals/<task>.json.
Unimodal references are trained once per seed (default config) and shared by every family of
a task, so all comparisons of a task use the same synergy subset.

``report`` reads them back, and for a candidate default sweep (a subset of ``GRID``) selects
each method's point by mean validation accuracy over seeds, and prints Markdown tables: SynIB
vs vanilla vs the strongest baseline (the baseline with the highest mean validation accuracy)
with 95% CIs, the candidate sweeps side by side, and calibration (ECE before / after).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from synib_spec.jobs import DEFAULT_SWEEP

DEFAULT_LAMBDAS = tuple(float(v) for v in DEFAULT_SWEEP["lambda"]["values"])
RESULTS = Path(__file__).resolve().parent / "results" / "real_signals"
SMOKE_DATA = {"n_train": 200, "n_val": 60, "n_test": 200}
SMOKE_KNOBS = {"epochs": 1}
TASKS = ("digits_pairs", "speech_irony", "digit_speech", "xor_spurious", "xor_pid")
GRID = (0.1, 0.3, 1.0, 3.0, 10.0)  # lambda = 0 is vanilla, reused (see _load)
BASELINES = (
    "masking_only",
    "modality_dropout",
    "ensemble",
    "ogm_ge",
    "mmpareto",
    "reconboost",
    "dnr",
    "mcr",
    "agm",
    "mla",
    "pmr",
)
FAMILIES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "default": (("vanilla", "synib", *BASELINES), {}),
    "input_swap": (
        ("vanilla", "synib"),
        {"mask_level": "input", "feature_norm": "none", "fill": "swap"},
    ),
    "input_noise": (
        ("vanilla", "synib"),
        {"mask_level": "input", "feature_norm": "none", "fill": "noise"},
    ),
    # issue #19's failing configuration: input-level masks with the LayerNorm kept
    "input_swap_layernorm": (
        ("vanilla", "synib"),
        {"mask_level": "input", "feature_norm": "layernorm", "fill": "swap"},
    ),
}
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 9: 2.262}


def run(args: argparse.Namespace) -> None:
    import torch

    from synib_core.config import config_from_knobs
    from synib_core.data import make_dataset
    from synib_core.training import train_references
    from synib_core.training.sweep import run_sweep

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        path = RESULTS / f"{task}.json"
        saved = json.loads(path.read_text()) if path.exists() else {"runs": [], "families": []}
        data = make_dataset(task, 0, **(SMOKE_DATA if args.smoke else {}))
        extra = SMOKE_KNOBS if args.smoke else {}
        refs = {s: train_references(config_from_knobs(extra), data, seed=s) for s in seeds}
        for family in args.families.split(","):
            if family in saved["families"]:
                continue
            methods, knobs = FAMILIES[family]
            start = time.perf_counter()

            def log(r: Any, family: str = family, start: float = start, task: str = task) -> None:
                m = r.metrics
                print(
                    f"{task} {family} {r.method} {r.point} seed {r.seed}: val "
                    f"{m['val_acc']:.3f} test {m['test_acc']:.3f} syn "
                    f"{m.get('synergy_acc', float('nan')):.3f} ({time.perf_counter() - start:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )

            result = run_sweep(
                data,
                methods=methods,
                seeds=seeds,
                base=config_from_knobs({**knobs, **extra}),
                sweep={"lambda": GRID},
                on_run=log,
                references=refs,
            )
            for r in result.runs:
                saved["runs"].append(
                    {
                        "family": family,
                        "method": r.method,
                        "seed": r.seed,
                        "point": r.point,
                        "metrics": r.metrics,
                        "test_pred": r.test_pred.tolist(),
                    }
                )
            saved["families"].append(family)
            saved["y_test"] = result.y_test.tolist()
            saved["n_val"] = result.n_val
            saved["references"] = {
                str(s): {m: p.tolist() for m, p in r.items()} for s, r in refs.items()
            }
            path.write_text(json.dumps(saved))


def _load(task: str, family: str, sweep: tuple[float, ...]) -> Any:
    """The saved runs of one task and family restricted to the candidate ``sweep``."""
    from synib_core.training.sweep import SweepResult, SweepRun

    saved = json.loads((RESULTS / f"{task}.json").read_text())
    runs = [
        SweepRun(r["method"], r["seed"], r["point"], r["metrics"], np.asarray(r["test_pred"]))
        for r in saved["runs"]
        if r["family"] == family and r["point"].get("lambda", sweep[0]) in sweep
    ]
    if 0.0 in sweep:  # lambda = 0 IS vanilla, bit for bit (tests/core/test_training.py)
        swept = {r.method for r in runs if "lambda" in r.point}
        for r in [r for r in runs if r.method == "vanilla"]:
            runs += [SweepRun(m, r.seed, {"lambda": 0.0}, r.metrics, r.test_pred) for m in swept]
    refs = {
        int(s): {m: np.asarray(p) for m, p in r.items()} for s, r in saved["references"].items()
    }
    # n_val: the selection keeps lambda = 0 unless beaten beyond the validation noise
    return SweepResult(runs, refs, np.asarray(saved["y_test"]), n_val=saved.get("n_val"))


def _ci(values: list[float]) -> str:
    """mean ± 95% CI half-width over seeds (Student t)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size < 2:
        return f"{arr.mean():.3f}" if arr.size else "-"
    half = T_975.get(arr.size - 1, 1.96) * arr.std(ddof=1) / np.sqrt(arr.size)
    return f"{arr.mean():.3f} ± {half:.3f}"


def _delta(d: dict[str, float] | None) -> str:
    return "-" if not d else f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _report(task: str, family: str, sweep: tuple[float, ...]) -> dict[str, Any]:
    from synib_core.training.sweep import sweep_report

    return sweep_report(_load(task, family, sweep), n_boot=2000)


def _strongest(report: dict[str, Any]) -> str | None:
    present = [b for b in BASELINES if b in report["methods"]]
    if not present:
        return None
    return max(present, key=lambda b: report["methods"][b]["metrics"]["val_acc"]["mean"])


def main_table(tasks: list[str], sweep: tuple[float, ...]) -> str:
    lines = [
        f"Sweep lambda in {list(sweep)}; per method the point chosen by synib_spec.selection "
        "(highest mean val_acc over 5 seeds; lambda = 0 kept unless beaten by more than one "
        "standard error of the validation accuracy); test metrics of that point, mean ± 95% CI over seeds (t); Δ vs "
        "vanilla: paired bootstrap 95% CI over test samples and seeds.\n",
        "| task | config | method (selected) | test_acc | synergy_acc | group synergy acc | "
        "Δ test_acc | Δ synergy_acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for family in FAMILIES:
            try:
                report = _report(task, family, sweep)
            except (FileNotFoundError, StopIteration, ValueError):
                continue
            shown = ["vanilla", "synib"]
            strongest = _strongest(report)
            if strongest:
                shown.append(strongest)
            for method in shown:
                entry = report["methods"].get(method)
                if entry is None:
                    continue
                m, d = entry["metrics"], entry.get("delta_vs_baseline", {})
                point = ",".join(f"{k}={v:g}" for k, v in entry["best_config"].items())
                label = f"{method} ({point})" if point else method
                if method == strongest:
                    label = f"best baseline: {label}"
                lines.append(
                    f"| {task} | {family} | {label} | {_ci(m['test_acc']['values'])} | "
                    f"{_ci(m.get('synergy_acc', {}).get('values', []))} | "
                    f"{_ci(m.get('group_synergy_acc', {}).get('values', []))} | "
                    f"{_delta(d.get('test_acc'))} | {_delta(d.get('synergy_acc'))} |"
                )
    return "\n".join(lines)


def sweep_table(tasks: list[str], candidates: list[tuple[float, ...]]) -> str:
    """Per candidate sweep: SynIB - vanilla on synergy_acc and test_acc (selected points)."""
    head = "| task | config | " + " | ".join(str(list(c)) for c in candidates) + " |"
    lines = [
        "Cell: Δ synergy_acc / Δ test_acc of SynIB vs vanilla (means over 5 seeds), selected "
        "lambda in brackets; ✓ when Δ synergy >= 0 and Δ test >= -0.01.\n",
        head,
        "|---|---|" + "---|" * len(candidates),
    ]
    for task in tasks:
        for family in FAMILIES:
            cells = []
            for cand in candidates:
                try:
                    report = _report(task, family, cand)
                except (FileNotFoundError, StopIteration, ValueError):
                    cells.append("-")
                    continue
                syn = report["methods"]["synib"]
                d = syn.get("delta_vs_baseline", {})
                ds = d.get("synergy_acc", {}).get("delta", float("nan"))
                dt = d.get("test_acc", {}).get("delta", float("nan"))
                ok = "✓" if ds >= 0 and dt >= -0.01 else "✗"
                cells.append(f"{ds:+.3f} / {dt:+.3f} ({syn['best_config']['lambda']:g}) {ok}")
            if any(c != "-" for c in cells):
                lines.append(f"| {task} | {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def methods_table(tasks: list[str], sweep: tuple[float, ...]) -> str:
    """Every method of the default configuration at its selected point (the baselines table)."""
    lines = [
        "Default configuration, every method at its selected point (lambda-reading methods swept "
        f"over {list(sweep)}); mean ± 95% CI over seeds; Δ synergy_acc vs vanilla: paired "
        "bootstrap 95% CI.\n",
        "| task | method (selected) | test_acc | synergy_acc | Δ synergy_acc |",
        "|---|---|---|---|---|",
    ]
    for task in tasks:
        try:
            report = _report(task, "default", sweep)
        except (FileNotFoundError, StopIteration, ValueError):
            continue
        for method in [m for m in ("vanilla", "synib", *BASELINES) if m in report["methods"]]:
            entry = report["methods"][method]
            m, d = entry["metrics"], entry.get("delta_vs_baseline", {})
            point = ",".join(f"{k}={v:g}" for k, v in entry["best_config"].items())
            label = f"{method} ({point})" if point else method
            lines.append(
                f"| {task} | {label} | {_ci(m['test_acc']['values'])} | "
                f"{_ci(m.get('synergy_acc', {}).get('values', []))} | "
                f"{_delta(d.get('synergy_acc'))} |"
            )
    return "\n".join(lines)


def calibration_table(tasks: list[str], sweep: tuple[float, ...]) -> str:
    lines = [
        "Test ECE (15 bins) of the selected point, mean over seeds: before → after temperature "
        "scaling on the validation split (mean fitted T).\n",
        "| task | " + " | ".join(("vanilla", "synib", *BASELINES)) + " |",
        "|---|" + "---|" * (2 + len(BASELINES)),
    ]
    for task in tasks:
        try:
            report = _report(task, "default", sweep)
        except (FileNotFoundError, StopIteration, ValueError):
            continue
        cells = []
        for method in ("vanilla", "synib", *BASELINES):
            m = report["methods"].get(method, {}).get("metrics", {})
            if "test_ece_uncalibrated" not in m:
                cells.append("-")
                continue
            before, after = m["test_ece_uncalibrated"]["mean"], m["test_ece"]["mean"]
            cells.append(f"{before:.3f} → {after:.3f} (T {m['temperature']['mean']:.2f})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(args: argparse.Namespace) -> None:
    tasks = [t for t in args.tasks.split(",") if (RESULTS / f"{t}.json").exists()]
    sweep = tuple(float(v) for v in args.sweep.split(","))
    candidates = [tuple(float(v) for v in c.split(",")) for c in args.candidates.split(";")]
    print("## Comparison\n\n" + main_table(tasks, sweep))
    print("\n## Candidate default sweeps\n\n" + sweep_table(tasks, candidates))
    print("\n## Every method (default configuration)\n\n" + methods_table(tasks, sweep))
    print("\n## Calibration\n\n" + calibration_table(tasks, sweep))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="report", choices=("run", "report"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument(
        "--families",
        default="default,input_noise,input_swap",
        help=f"of {','.join(FAMILIES)}",
    )
    parser.add_argument("--seeds", default="0,1,2,3,4")
    default_sweep = ",".join(f"{v:g}" for v in DEFAULT_LAMBDAS)
    parser.add_argument("--sweep", default=default_sweep, help="the default sweep to report")
    parser.add_argument(
        "--candidates",
        default=f"1;0,1;0,0.1,1,10;0.1,0.3,1,3,10;{default_sweep}",
        help="candidate sweeps, ';'-separated",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="folder of the per-task result files"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny xor_pid, 1 seed, 1 epoch, then the report"
    )
    args = parser.parse_args(argv)
    use_results(args.results)
    if args.smoke:
        args.tasks, args.families, args.seeds = "xor_pid", "default", "0"
        run(args)
        report(args)
    else:
        run(args) if args.command == "run" else report(args)
    return 0


def use_results(folder: Path) -> None:
    global RESULTS
    RESULTS = folder


if __name__ == "__main__":
    sys.exit(main())
