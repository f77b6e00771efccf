"""Compare methods over seeds: the report dict (docs/INTERNALS.md "Job report", without the
service fields) and a plain-text table. numpy only; the worker reuses both.

Example:
    >>> runs = [run_record("vanilla", 0, metrics, pred, y_test, ref_preds=refs), ...]  # doctest: +SKIP
    >>> print(format_table(compare_report(runs)))                                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synib_core.metrics import paired_bootstrap_ci, unimodal_groups

DELTA_METRICS = ("test_acc", "synergy_acc")
TABLE_METRICS = ("val_acc", "test_acc", "test_macro_f1", "test_ece", "synergy_acc")


@dataclass
class RunRecord:
    """One trained model (one method, one seed) as the report needs it.

    metrics: vocabulary name -> value at the selected epoch; test_correct: (N_test,) bool, the
    fused prediction was right; synergy_mask: (N_test,) bool synergy subset of this seed's
    unimodal references (None without references); config: the knobs that differ from defaults.
    """

    method: str
    seed: int
    metrics: dict[str, float]
    test_correct: np.ndarray
    synergy_mask: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)


def run_record(
    method: str,
    seed: int,
    metrics: Mapping[str, float],
    test_pred: np.ndarray,
    y_test: np.ndarray,
    *,
    ref_preds: Mapping[str, np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Build a RunRecord from test predictions (N_test,), labels (N_test,) and optional unimodal
    reference predictions (modality -> (N_test,))."""
    test_pred, y_test = np.asarray(test_pred), np.asarray(y_test)
    if test_pred.shape != y_test.shape or test_pred.ndim != 1:
        raise ValueError(f"test_pred: shape {test_pred.shape} does not match y_test {y_test.shape}")
    mask = None if ref_preds is None else unimodal_groups(ref_preds, y_test)["synergy"]
    return RunRecord(method, seed, dict(metrics), test_pred == y_test, mask, dict(config or {}))


def _stats(values: list[float | None]) -> dict[str, Any]:
    """{mean, std, values}; std is the sample std (ddof 1) over seeds, 0 for one value."""
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    std = float(present.std(ddof=1)) if present.size > 1 else 0.0
    mean = float(present.mean()) if present.size else None
    return {"mean": mean, "std": std, "values": values}


def _synergy_mask(rec: RunRecord) -> np.ndarray | None:
    mask = rec.synergy_mask
    return mask if mask is not None and mask.any() else None


def _delta(
    runs: Mapping[int, RunRecord], base: Mapping[int, RunRecord], metric: str, n_boot: int
) -> dict[str, float] | None:
    """Paired bootstrap delta of `metric` (test_acc or synergy_acc) over the shared seeds."""
    seeds = sorted(set(runs) & set(base))
    masks = {s: _synergy_mask(base[s]) for s in seeds}  # references are shared per seed
    if metric == "synergy_acc":
        seeds = [s for s in seeds if masks[s] is not None]
    if not seeds:
        return None
    a = np.stack([runs[s].test_correct for s in seeds])
    b = np.stack([base[s].test_correct for s in seeds])
    mask = np.stack([masks[s] for s in seeds]) if metric == "synergy_acc" else None  # type: ignore[misc]
    delta, lo, hi = paired_bootstrap_ci(a, b, mask=mask, n_boot=n_boot, seed=0)
    return {"delta": delta, "lo": lo, "hi": hi}


def compare_report(
    records: Sequence[RunRecord],
    *,
    baseline: str = "vanilla",
    references: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """The comparison report: per method, each metric's mean/std/values over seeds (values in
    seed order, None where a seed lacks the metric) and, against `baseline`, the paired
    bootstrap delta with a 95% CI for test_acc and synergy_acc.

    records: one RunRecord per (method, seed); references: seed -> modality -> {"test_acc": ..}.
    """
    if not records:
        raise ValueError("records: needs at least one run")
    by_method: dict[str, dict[int, RunRecord]] = {}
    for rec in records:
        if rec.seed in by_method.setdefault(rec.method, {}):
            raise ValueError(f"records: two runs for method {rec.method!r} seed {rec.seed}")
        by_method[rec.method][rec.seed] = rec
    seeds = sorted({rec.seed for rec in records})
    methods: dict[str, Any] = {}
    for method, runs in by_method.items():
        names = sorted({k for rec in runs.values() for k in rec.metrics})
        entry: dict[str, Any] = {
            "best_config": next(iter(runs.values())).config,
            "seeds": sorted(runs),
            "metrics": {k: _stats([runs[s].metrics.get(k) for s in sorted(runs)]) for k in names},
        }
        if method != baseline and baseline in by_method:
            deltas = {k: _delta(runs, by_method[baseline], k, n_boot) for k in DELTA_METRICS}
            entry["delta_vs_baseline"] = {k: v for k, v in deltas.items() if v is not None}
        methods[method] = entry
    refs = {str(s): {m: dict(v) for m, v in r.items()} for s, r in (references or {}).items()}
    return {
        "baseline": baseline,
        "selection": "val_acc",
        "seeds": seeds,
        "methods": methods,
        "references": refs,
    }


def _cell(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _delta_cell(delta: Mapping[str, float] | None) -> str:
    if not delta:
        return "-"
    return f"{delta['delta']:+.3f} [{delta['lo']:+.3f}, {delta['hi']:+.3f}]"


def verdict(method: str, baseline: str, deltas: Mapping[str, Mapping[str, float]]) -> str:
    """One sentence on ``method`` against ``baseline`` from its synergy_acc (else test_acc) delta:
    better or worse only when the 95% CI excludes 0, otherwise "did not beat" in words.

    Example: verdict("synib", "vanilla", {"synergy_acc": {"delta": 0.02, "lo": -0.01,
    "hi": 0.05}}) -> "synib vs vanilla: synergy_acc +0.020 [-0.010, +0.050]; the 95% CI
    includes 0: synib did not beat vanilla on the synergy subset (no winner)."
    """
    metric = "synergy_acc" if "synergy_acc" in deltas else "test_acc"
    d = deltas.get(metric)
    if not d:
        return f"{method} vs {baseline}: no paired delta (no shared seeds or no synergy subset)."
    where = "on the synergy subset" if metric == "synergy_acc" else "overall"
    head = f"{method} vs {baseline}: {metric} {_delta_cell(d)}"
    if d["lo"] > 0:
        return f"{head}; the 95% CI is above 0: {method} beat {baseline} {where}."
    if d["hi"] < 0:
        return f"{head}; the 95% CI is below 0: {method} was worse than {baseline} {where}."
    return f"{head}; the 95% CI includes 0: {method} did not beat {baseline} {where} (no winner)."


def format_table(report: Mapping[str, Any]) -> str:
    """A plain-text table: one row per method, mean ± std over seeds, then the deltas vs the
    baseline with their 95% CI; below it one verdict line per method in words (``verdict``)."""
    header = ["method", *TABLE_METRICS, "synergy_n"]
    header += [f"Δ {k}" for k in DELTA_METRICS]
    rows = [header]
    for method, entry in report["methods"].items():
        metrics, deltas = entry["metrics"], entry.get("delta_vs_baseline", {})
        row = [method, *(_cell(metrics.get(k)) for k in TABLE_METRICS)]
        syn_n = metrics.get("synergy_n", {}).get("mean")
        row.append("-" if syn_n is None else f"{syn_n:.0f}")
        row += [_delta_cell(deltas.get(k)) for k in DELTA_METRICS]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    seeds = ", ".join(str(s) for s in report.get("seeds", []))
    lines.append(f"baseline: {report.get('baseline')}; seeds: {seeds}; selection: val_acc")
    baseline = str(report.get("baseline"))
    for method, entry in report["methods"].items():
        point = entry.get("best_config") or {}
        if "sweep_curve" in entry and len(entry["sweep_curve"]) > 1:
            chosen = ", ".join(f"{k}={v}" for k, v in sorted(point.items()))
            lines.append(f"{method}: selected {chosen} (highest mean val_acc over seeds)")
    for method, entry in report["methods"].items():
        if method != baseline and "delta_vs_baseline" in entry:
            lines.append(verdict(method, baseline, entry["delta_vs_baseline"]))
    return "\n".join(lines)
