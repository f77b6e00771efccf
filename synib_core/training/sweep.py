"""Sweep + select by validation: the comparison rule of the service, as one library call.

For every method, seed and sweep point (a grid over knobs), train once; per method the reported
point is ``synib_spec.selection.best_point``'s (the highest MEAN validation accuracy over seeds,
first on ties; a lambda = 0 point kept unless beaten by more than the validation noise); its test
metrics (mean, std over seeds) are reported, with paired bootstrap 95% CIs
of the deltas against the baseline's best point. A method that reads none of the swept knobs
(``synib_spec.knobs.method_reads``) trains once per seed, not once per point. Unimodal references (the synergy
subset) are trained once per seed with the base config. Test numbers never take part in the
selection.

``DEFAULT_SWEEP`` is the sweep recommended for a plain comparison (docs/METHOD.md section 4
gives the measurement that chose it). It includes lambda = 0, which IS vanilla (bit for bit), so
validation can say "the penalty does not help here" instead of being forced to pick a penalty;
when ``vanilla`` is among the methods, a lambda = 0 point reuses its run instead of training
the same model again.

Example:
    >>> result = run_sweep(data, methods=("vanilla", "synib"), seeds=(0, 1),   # doctest: +SKIP
    ...                    sweep={"lambda": (0.1, 1.0, 10.0)})
    >>> report = sweep_report(result)          # reporting.compare_report + best_config + curve
    >>> print(format_table(report))
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synib_core.config import KNOBS, TrainConfig, config_from_knobs, method_reads
from synib_core.data import MultimodalData
from synib_core.reporting import compare_report, run_record
from synib_spec.jobs import DEFAULT_SWEEP as JOB_DEFAULT_SWEEP
from synib_spec.selection import best_point, is_null_point

__all__ = [
    "DEFAULT_SWEEP",
    "SweepResult",
    "SweepRun",
    "best_points",
    "method_points",
    "run_sweep",
    "sweep_grid",
    "sweep_report",
]

DEFAULT_SWEEP: dict[str, tuple[Any, ...]] = {
    knob: tuple(axis["values"]) for knob, axis in JOB_DEFAULT_SWEEP.items()
}  # the service's default sweep (synib_spec.jobs), as a grid
SELECTION = "val_acc"


@dataclass
class SweepRun:
    """One trained model: ``point`` the swept knob values it used (only knobs its method reads);
    metrics the metric vocabulary at its selected epoch; test_pred (N_test,) int64."""

    method: str
    seed: int
    point: dict[str, Any]
    metrics: dict[str, float]
    test_pred: np.ndarray


@dataclass
class SweepResult:
    """Every run, the unimodal reference test predictions {seed: {m: (N_test,)}}, the test labels
    (N_test,) and the base knobs the sweep started from."""

    runs: list[SweepRun]
    references: dict[int, dict[str, np.ndarray]]
    y_test: np.ndarray
    base_knobs: dict[str, Any] = field(default_factory=dict)
    n_val: int | None = None  # validation samples (the selection's noise margin)


def sweep_grid(sweep: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """Every point of the grid ``{knob: values}`` (knob order as given); ``[{}]`` when empty."""
    if not sweep:
        return [{}]
    for knob, values in sweep.items():
        if knob not in KNOBS:
            raise ValueError(f"sweep: unknown knob {knob!r}")
        if len(values) == 0:
            raise ValueError(f"sweep.{knob}: needs at least one value")
    keys = list(sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*sweep.values())]


def method_points(method: str, points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct points as ``method`` sees them: knobs it does not read are dropped."""
    out: list[dict[str, Any]] = []
    for point in points:
        seen = {k: v for k, v in point.items() if method_reads(method, k)}
        if seen not in out:
            out.append(seen)
    return out


def run_sweep(
    data: MultimodalData,
    *,
    methods: Sequence[str],
    seeds: Sequence[int],
    base: TrainConfig | None = None,
    sweep: Mapping[str, Sequence[Any]] | None = None,
    on_run: Callable[[SweepRun], None] | None = None,
    references: Mapping[int, Mapping[str, np.ndarray]] | None = None,
) -> SweepResult:
    """Train every (method, seed, point); references once per seed (with ``base``) unless
    ``references`` ({seed: {modality: (N_test,)}}) already holds that seed's.

    on_run: called after each run (progress output). Raises the library's KnobError for a bad
    knob value before anything trains (every point's config is built first).
    """
    from synib_core.training import fit, train_references

    base = base if base is not None else TrainConfig()
    # typed values ("0.1" -> 0.1), so that points compare and print as numbers
    points = [{k: config_from_knobs(p, base).to_knobs()[k] for k in p} for p in sweep_grid(sweep)]
    order = sorted(methods, key=lambda m: m != "vanilla")  # vanilla first: lambda = 0 reuses it
    plan = [(m, p, config_from_knobs(p, base)) for m in order for p in method_points(m, points)]
    y_test = np.asarray(data.y[data.split == 2], dtype=np.int64)
    runs: list[SweepRun] = []
    refs: dict[int, dict[str, np.ndarray]] = {s: dict(r) for s, r in (references or {}).items()}
    for seed in seeds:
        if seed not in refs:
            refs[seed] = train_references(base, data, seed=seed)
        done: dict[tuple[str, str], SweepRun] = {}
        for method, point, config in plan:
            twin = done.get(("vanilla", _label(_as_vanilla(point)))) if config.lam == 0 else None
            if twin is not None and method in ("synib", "masking_only"):
                # lambda = 0 trains exactly vanilla's model (bit for bit, tested): reuse it
                run = SweepRun(method, seed, dict(point), dict(twin.metrics), twin.test_pred)
            else:
                result = fit(config, data, method=method, seed=seed, references=refs[seed])
                run = SweepRun(method, seed, dict(point), dict(result.metrics), result.test_pred)
            done[(method, _label(point))] = run
            runs.append(run)
            if on_run is not None:
                on_run(run)
    n_val = int(np.sum(data.split == 1))
    return SweepResult(runs, {s: refs[s] for s in seeds}, y_test, base.to_knobs(), n_val)


def _as_vanilla(point: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a point that vanilla reads (its twin's point when lambda = 0)."""
    return method_points("vanilla", [point])[0]


def _label(point: Mapping[str, Any]) -> str:
    return "|".join(f"{k}={point[k]:g}" if isinstance(point[k], float) else f"{k}={point[k]}" for k in sorted(point))  # fmt: skip


def best_points(runs: Sequence[SweepRun], n_val: int | None = None) -> dict[str, dict[str, Any]]:
    """method -> its reported point (``synib_spec.selection.best_point``: the highest mean
    val_acc over seeds, except that a lambda = 0 point is kept unless beaten by more than the
    validation noise, when ``n_val`` is given). Only runs that report val_acc count."""
    scores: dict[str, dict[str, list[float]]] = {}
    points: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        if SELECTION in run.metrics:
            label = _label(run.point)
            scores.setdefault(run.method, {}).setdefault(label, []).append(run.metrics[SELECTION])
            points.setdefault((run.method, label), run.point)
    best: dict[str, dict[str, Any]] = {}
    for method, by_label in scores.items():
        null = next(
            (label for label in by_label if is_null_point(method, points[(method, label)])), None
        )
        chosen = best_point(by_label, null=null, n_val=n_val)
        if chosen is not None:
            best[method] = dict(points[(method, chosen)])
    return best


def _curve(runs: Sequence[SweepRun], method: str) -> list[dict[str, Any]]:
    """Mean and std over seeds of val_acc, test_acc and synergy_acc at every point of method."""
    by_point: dict[str, list[SweepRun]] = {}
    for run in runs:
        if run.method == method:
            by_point.setdefault(_label(run.point), []).append(run)
    curve = []
    for group in by_point.values():
        entry: dict[str, Any] = {"config": dict(group[0].point)}
        for name in ("val_acc", "test_acc", "synergy_acc"):
            values = [r.metrics[name] for r in group if name in r.metrics]
            if values:
                entry[name] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        curve.append(entry)
    return curve


def sweep_report(
    result: SweepResult,
    *,
    baseline: str = "vanilla",
    n_boot: int = 2000,
    data_pid: dict[str, Any] | None = None,
    prediction_pid: Callable[[np.ndarray], Any] | None = None,
) -> dict[str, Any]:
    """``reporting.compare_report`` of each method's best point, plus per method
    ``best_config`` (the selected point) and ``sweep_curve`` (every point's mean/std).
    ``data_pid``: the PID of the test labels; ``prediction_pid(test_pred)``: the PID of a run's
    predictions (both optional, see ``synib_core.metrics.pid``)."""
    best = best_points(result.runs, n_val=result.n_val)
    selected = [r for r in result.runs if r.method in best and r.point == best[r.method]]
    records = [
        run_record(
            r.method,
            r.seed,
            r.metrics,
            r.test_pred,
            result.y_test,
            ref_preds=result.references.get(r.seed),
            config=r.point,
            prediction_pid=None if prediction_pid is None else prediction_pid(r.test_pred),
        )
        for r in selected
    ]
    acc = {
        s: {m: {"test_acc": float(np.mean(p == result.y_test))} for m, p in refs.items()}
        for s, refs in result.references.items()
    }
    report = compare_report(
        records, baseline=baseline, references=acc, n_boot=n_boot, data_pid=data_pid
    )
    for method, entry in report["methods"].items():
        entry["best_config"] = best[method]
        entry["sweep_curve"] = _curve(result.runs, method)
    return report
