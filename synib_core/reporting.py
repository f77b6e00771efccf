"""Compare methods over seeds: the report dict (docs/USER_GUIDE.md, "The report"), without the
service fields) and a plain-text table. numpy only; the worker reuses both.

Beyond the metrics, the report says how many seeds would detect a +5-point gain with 80% power
(``seeds_needed``, from the spread of each method's per-seed delta against the baseline) and,
when given, the PID of the test labels and of each method's predictions (``data_pid``,
``RunRecord.prediction_pid``: PID.to_json() dicts), so it shows a method moving the synergy of
what the model predicts and not only its accuracy.

Example:
    >>> runs = [run_record("vanilla", 0, metrics, pred, y_test, ref_preds=refs), ...]  # doctest: +SKIP
    >>> print(format_table(compare_report(runs)))                                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synib_core.metrics import paired_bootstrap_ci, seeds_needed, unimodal_groups
from synib_core.metrics.power import DEFAULT_GAIN

DELTA_METRICS = ("test_acc", "synergy_acc")
TABLE_METRICS = ("val_acc", "test_acc", "test_macro_f1", "test_ece", "synergy_acc")


@dataclass
class RunRecord:
    """One trained model (one method, one seed) as the report needs it.

    metrics: vocabulary name -> value at the selected epoch; test_correct: (N_test,) bool, the
    fused prediction was right; synergy_mask: (N_test,) bool synergy subset of this seed's
    unimodal references (None without references); config: the knobs that differ from defaults;
    prediction_pid: the PID of the model's test predictions, one ``PID.to_json()`` per pair.
    """

    method: str
    seed: int
    metrics: dict[str, float]
    test_correct: np.ndarray
    synergy_mask: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)
    prediction_pid: list[dict[str, Any]] | None = None


def run_record(
    method: str,
    seed: int,
    metrics: Mapping[str, float],
    test_pred: np.ndarray,
    y_test: np.ndarray,
    *,
    ref_preds: Mapping[str, np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
    prediction_pid: Sequence[Mapping[str, Any]] | None = None,
) -> RunRecord:
    """Build a RunRecord from test predictions (N_test,), labels (N_test,), optional unimodal
    reference predictions (modality -> (N_test,)) and the PID of the predictions."""
    test_pred, y_test = np.asarray(test_pred), np.asarray(y_test)
    if test_pred.shape != y_test.shape or test_pred.ndim != 1:
        raise ValueError(f"test_pred: shape {test_pred.shape} does not match y_test {y_test.shape}")
    mask = None if ref_preds is None else unimodal_groups(ref_preds, y_test)["synergy"]
    pid = None if prediction_pid is None else [dict(p) for p in prediction_pid]
    return RunRecord(
        method, seed, dict(metrics), test_pred == y_test, mask, dict(config or {}), pid
    )


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


def _seeds_needed(
    runs: Mapping[int, RunRecord], base: Mapping[int, RunRecord], metric: str
) -> int | None:
    """Seeds to detect +DEFAULT_GAIN in `metric` from its per-seed deltas against the baseline."""
    seeds = [s for s in sorted(set(runs) & set(base))
             if metric in runs[s].metrics and metric in base[s].metrics]  # fmt: skip
    deltas = [runs[s].metrics[metric] - base[s].metrics[metric] for s in seeds]
    return seeds_needed(deltas, DEFAULT_GAIN)


def _pid_stats(runs: Mapping[int, RunRecord]) -> dict[str, Any] | None:
    """pair "a+b" -> redundancy / unique (per modality) / synergy / total, each mean/std/values
    over the seeds that have a prediction PID."""
    return pid_summary([runs[s].prediction_pid or [] for s in sorted(runs)])


def pid_summary(per_seed: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any] | None:
    """The report's ``prediction_pid`` of one method: pair "a+b" -> redundancy / unique (per
    modality) / synergy / total, each mean/std/values over the seeds; None without any PID.

    per_seed: for each seed (in seed order), the PID of its predictions (``PID.to_json()`` per
    pair of modalities)."""
    by_pair: dict[str, list[Mapping[str, Any]]] = {}
    for pids in per_seed:
        for pid in pids:
            by_pair.setdefault("+".join(pid["modalities"]), []).append(pid)
    if not by_pair:
        return None
    out: dict[str, Any] = {}
    for pair, pids in by_pair.items():
        entry = {k: _stats([p[k] for p in pids]) for k in ("redundancy", "synergy", "total")}
        entry["unique"] = {m: _stats([p["unique"][m] for p in pids]) for m in pids[0]["unique"]}
        out[pair] = entry
    return out


def compare_report(
    records: Sequence[RunRecord],
    *,
    baseline: str = "vanilla",
    references: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
    n_boot: int = 2000,
    data_pid: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The comparison report: per method, each metric's mean/std/values over seeds (values in
    seed order, None where a seed lacks the metric) and, against `baseline`, the paired
    bootstrap delta with a 95% CI for test_acc and synergy_acc and the seeds needed to detect a
    +5-point gain in each with 80% power; the PID of the predictions when the records have it.

    records: one RunRecord per (method, seed); references: seed -> modality -> {"test_acc": ..};
    data_pid: the PID of the test labels ({"pairs": [PID.to_json()...], "verdict": str}).
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
            needed = {k: _seeds_needed(runs, by_method[baseline], k) for k in DELTA_METRICS}
            entry["seeds_needed"] = {k: n for k, n in needed.items() if n is not None}
        pid = _pid_stats(runs)
        if pid is not None:
            entry["prediction_pid"] = pid
        methods[method] = entry
    refs = {str(s): {m: dict(v) for m, v in r.items()} for s, r in (references or {}).items()}
    report = {
        "baseline": baseline,
        "selection": "val_acc",
        "seeds": seeds,
        "methods": methods,
        "references": refs,
        "seeds_needed_for": {"gain": DEFAULT_GAIN, "power": 0.8, "alpha": 0.05},
    }
    if data_pid is not None:
        report["data_pid"] = dict(data_pid)
    return report


def _cell(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def _delta_cell(delta: Mapping[str, float] | None) -> str:
    if not delta:
        return "-"
    return f"{delta['delta']:+.3f} [{delta['lo']:+.3f}, {delta['hi']:+.3f}]"


def verdict_metric(deltas: Mapping[str, Mapping[str, float]]) -> str:
    """The delta a verdict is about: ``synergy_acc`` when there is one, else ``test_acc``."""
    return "synergy_acc" if "synergy_acc" in deltas else "test_acc"


def verdict(method: str, baseline: str, deltas: Mapping[str, Mapping[str, float]]) -> str:
    """One sentence on ``method`` against ``baseline`` from its synergy_acc (else test_acc) delta:
    better or worse only when the 95% CI excludes 0, otherwise "did not beat" in words.

    Example: verdict("synib", "vanilla", {"synergy_acc": {"delta": 0.02, "lo": -0.01,
    "hi": 0.05}}) -> "synib vs vanilla: synergy_acc +0.020 [-0.010, +0.050]; the 95% CI
    includes 0: synib did not beat vanilla on the synergy subset (no winner)."
    """
    metric = verdict_metric(deltas)
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
            lines.append(
                f"{method}: selected {chosen} (highest mean val_acc over seeds; lambda = 0 is "
                "kept unless beaten by more than the validation noise)"
            )
    lines += pid_and_power_lines(report)
    for method, entry in report["methods"].items():  # the verdicts last: the conclusion
        if method != baseline and "delta_vs_baseline" in entry:
            lines.append(verdict(method, baseline, entry["delta_vs_baseline"]))
    return "\n".join(lines)


def _pid_cell(pair: str, r: float, unique: Mapping[str, float], s: float) -> str:
    uniques = ", ".join(f"U {m} {u:.3f}" for m, u in unique.items())
    return f"{pair}: R {r:.3f}, {uniques}, S {s:.3f}"


def pid_and_power_lines(report: Mapping[str, Any]) -> list[str]:
    """The PID lines (bits: the test labels, then each method's predictions, mean over seeds)
    and one "seeds needed" line per method compared with the baseline."""
    lines = []
    data = report.get("data_pid")
    if data:
        cells = [_pid_cell("+".join(p["modalities"]), p["redundancy"], p["unique"], p["synergy"])
                 for p in data["pairs"]]  # fmt: skip
        lines.append(f"PID of the test labels (bits): {'; '.join(cells)} ({data['verdict']})")
    for method, entry in report["methods"].items():
        cells = []
        for pair, v in (entry.get("prediction_pid") or {}).items():
            unique = {m: u["mean"] for m, u in v["unique"].items()}
            cells.append(_pid_cell(pair, v["redundancy"]["mean"], unique, v["synergy"]["mean"]))
        if cells:
            lines.append(f"PID of {method}'s predictions (bits): {'; '.join(cells)}")
    power = report.get("seeds_needed_for", {})
    for method, entry in report["methods"].items():
        needed = entry.get("seeds_needed")
        if needed:
            counts = ", ".join(f"{k} {n}" for k, n in needed.items())
            lines.append(
                f"seeds needed ({method} vs {report.get('baseline')}, to detect "
                f"+{100 * power.get('gain', DEFAULT_GAIN):.0f} points with 80% power, paired "
                f"normal approximation): {counts}"
            )
    return lines
