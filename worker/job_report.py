"""The job report (docs/USER_GUIDE.md, "The report"), computed from the finished trials.

Per method: the best sweep point by mean validation accuracy over seeds (never by test), the
test metrics of that point (mean, std, per-seed values), deltas against the baseline's best point
with paired bootstrap CIs over the test samples, the sweep curve, and the best trial's artifact.

With the ``pid`` extra (cvxpy), also the PID of the test labels (``data_pid``: pairs + verdict)
and per method the PID of the reported point's test predictions (``prediction_pid``, mean over
seeds, the shape ``synib_core.reporting`` gives ``synib compare``); the test inputs are
discretised once per job (``pid_states``) and reused for every trial. Per method compared with
the baseline, ``seeds_needed`` (seeds to detect +``SEEDS_GAIN`` with ``SEEDS_POWER`` power, from
the per-seed deltas; ``seeds_needed_for`` says which). Without cvxpy the PID keys are left out
and ``pid_note`` says why. ``headline``: per method, the delta its verdict is about, with its
CI (what the jobs list shows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synib_spec.jobs import JobSpec, sweep_label
from synib_spec.selection import SELECTION_METRIC, best_point, is_null_point

log = logging.getLogger(__name__)

SELECTION = SELECTION_METRIC
CURVE_METRICS = ("val_acc", "test_acc", "synergy_acc")
SEEDS_METRICS = ("test_acc", "synergy_acc")
SEEDS_GAIN = 0.05  # synib_core.metrics.power.DEFAULT_GAIN: +5 points of accuracy
SEEDS_POWER = 0.8
SEEDS_ALPHA = 0.05


@dataclass(frozen=True)
class TrialOutcome:
    """What the report needs of one trial (``sweep_values``: its point of the sweep)."""

    trial_id: str
    key: str
    method: str
    seed: int
    status: str
    sweep_values: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TestSplit:
    """The test split: labels ``y`` (N,), ground-truth ``group`` (N,) or None, and the unimodal
    reference predictions per seed ``{seed: {modality: (N,)}}``."""

    __test__ = False  # not a pytest test class despite its name

    y: np.ndarray
    group: np.ndarray | None
    references: dict[int, dict[str, np.ndarray]]
    n_val: int | None = None  # validation samples: the selection's noise margin
    # The PID's discrete states of the test inputs ({modality: (N,) int}, ``pid_states``), the
    # clusters per modality they used, or why there is no PID (``pid_note``).
    pid_states: dict[str, np.ndarray] | None = None
    pid_clusters: int | None = None
    pid_note: str | None = None


def pid_states(
    x_test: Mapping[str, np.ndarray], y_test: np.ndarray
) -> tuple[dict[str, np.ndarray] | None, int | None, str | None]:
    """Discretise the test inputs once for every PID of the report: (states, clusters, None),
    or (None, None, the reason) when the PID is left out (no cvxpy, one modality)."""
    import importlib.util

    from synib_core.metrics.pid import INSTALL_HINT

    if len(x_test) < 2:
        return None, None, "PID left out: it needs at least two modalities"
    if importlib.util.find_spec("cvxpy") is None:
        return None, None, f"PID left out: {INSTALL_HINT} (on the workers)"
    from synib_core.metrics.discretise import default_clusters, discretise_modalities

    num_classes = int(np.unique(y_test).shape[0])
    k = default_clusters(int(y_test.shape[0]), num_classes)
    try:
        states = discretise_modalities(dict(x_test), num_classes, clusters=k)
    except Exception as exc:  # ImportError (scikit-learn), bad inputs: the job still succeeds
        log.warning("PID left out: discretising the test inputs failed", exc_info=True)
        return None, None, f"PID left out: {type(exc).__name__}: {exc}"
    return states, k, None


PredictionLoader = Callable[[str], np.ndarray | None]
"""trial_id -> (N_test,) int predictions of the trial's selected model, or None."""


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "values": [float(v) for v in arr]}


def group_points(trials: Sequence[TrialOutcome]) -> dict[str, list[TrialOutcome]]:
    """Succeeded trials by sweep point (label ``lambda=1|...``), in first-seen order, by seed."""
    points: dict[str, list[TrialOutcome]] = {}
    for t in trials:
        if t.status == "succeeded" and SELECTION in t.metrics:
            points.setdefault(sweep_label(t.sweep_values), []).append(t)
    return {k: sorted(v, key=lambda t: t.seed) for k, v in points.items()}


def reported_point(
    method: str, points: Mapping[str, list[TrialOutcome]], n_val: int | None
) -> str | None:
    """Label of the point ``method`` is reported at (``synib_spec.selection.best_point``: the
    highest mean val_acc over seeds; a lambda = 0 point kept unless beaten beyond the noise)."""
    scores = {label: [t.metrics[SELECTION] for t in trials] for label, trials in points.items()}
    null = next(
        (
            label
            for label, trials in points.items()
            if is_null_point(method, trials[0].sweep_values)
        ),
        None,
    )
    return best_point(scores, null=null, n_val=n_val)


def metric_summary(trials: Sequence[TrialOutcome]) -> dict[str, dict[str, Any]]:
    """{metric: {mean, std, values}} for every metric all the trials report."""
    names = set.intersection(*(set(t.metrics) for t in trials)) if trials else set()
    return {name: mean_std([t.metrics[name] for t in trials]) for name in sorted(names)}


def sweep_curve(points: Mapping[str, list[TrialOutcome]]) -> list[dict[str, Any]]:
    curve = []
    for trials in points.values():
        entry: dict[str, Any] = {"config": dict(trials[0].sweep_values)}
        for name in CURVE_METRICS:
            values = [t.metrics[name] for t in trials if name in t.metrics]
            if values:
                stats = mean_std(values)
                entry[name] = {"mean": stats["mean"], "std": stats["std"]}
        curve.append(entry)
    return curve


def _correctness(
    trials: Sequence[TrialOutcome], seeds: Sequence[int], preds: PredictionLoader, y: np.ndarray
) -> np.ndarray | None:
    """(S, N) bool correctness of the trials of ``seeds`` (None if a prediction is missing)."""
    by_seed = {t.seed: t for t in trials}
    rows = []
    for seed in seeds:
        pred = preds(by_seed[seed].trial_id)
        if pred is None or pred.shape != y.shape:
            return None
        rows.append(pred == y)
    return np.stack(rows)


def deltas_vs_baseline(
    best: Sequence[TrialOutcome],
    baseline: Sequence[TrialOutcome],
    test: TestSplit,
    preds: PredictionLoader,
) -> dict[str, dict[str, float]]:
    """test_acc, synergy_acc and group_<g>_acc deltas with paired bootstrap 95% CIs."""
    from synib_core.metrics import paired_bootstrap_cis, unimodal_groups

    seeds = sorted({t.seed for t in best} & {t.seed for t in baseline})
    if not seeds:
        return {}
    a = _correctness(best, seeds, preds, test.y)
    b = _correctness(baseline, seeds, preds, test.y)
    if a is None or b is None:
        return {}
    masks: dict[str, np.ndarray] = {"test_acc": np.ones_like(a)}
    if all(s in test.references for s in seeds):
        masks["synergy_acc"] = np.stack(
            [unimodal_groups(test.references[s], test.y)["synergy"] for s in seeds]
        )
    if test.group is not None:
        for g in sorted({str(v) for v in test.group}):
            masks[f"group_{g}_acc"] = np.broadcast_to(test.group.astype(str) == g, a.shape)
    # One pass over the resamples for every metric (each result as its own call would give).
    cis = paired_bootstrap_cis(
        {name: (a, b, mask) for name, mask in masks.items() if mask.any(axis=1).all()}
    )
    return {name: {"delta": d, "lo": lo, "hi": hi} for name, (d, lo, hi) in cis.items()}


PIDOf = Callable[[str], list[dict[str, Any]] | None]
"""trial_id -> the PID of its test predictions (``PID.to_json()`` per pair), or None."""


def seeds_needed_vs(
    best: Sequence[TrialOutcome], baseline: Sequence[TrialOutcome]
) -> dict[str, int]:
    """Seeds to detect +SEEDS_GAIN in test_acc and synergy_acc with SEEDS_POWER power, from the
    per-seed deltas of ``best`` against ``baseline`` (``synib_core.metrics.seeds_needed``); a
    metric with fewer than two paired seeds is left out."""
    from synib_core.metrics import seeds_needed

    base = {t.seed: t for t in baseline}
    out = {}
    for metric in SEEDS_METRICS:
        deltas = [
            t.metrics[metric] - base[t.seed].metrics[metric]
            for t in best
            if t.seed in base and metric in t.metrics and metric in base[t.seed].metrics
        ]
        n = seeds_needed(deltas, SEEDS_GAIN, power=SEEDS_POWER, alpha=SEEDS_ALPHA)
        if n is not None:
            out[metric] = n
    return out


def method_report(
    method: str,
    trials: Sequence[TrialOutcome],
    baseline_best: Sequence[TrialOutcome] | None,
    test: TestSplit,
    preds: PredictionLoader,
    artifacts: Mapping[str, str],
    pid_of: PIDOf | None = None,
) -> dict[str, Any]:
    """One method's entry of the report (see the module docstring)."""
    points = group_points(trials)
    label = reported_point(method, points, test.n_val)
    entry: dict[str, Any] = {
        "best_config": None,
        "metrics": {},
        "delta_vs_baseline": {},
        "sweep": sweep_curve(points),
        "trial_ids": [t.trial_id for t in trials],
        "best_artifact_id": None,
        "trials_succeeded": sum(t.status == "succeeded" for t in trials),
        "trials_failed": sum(t.status == "failed" for t in trials),
    }
    if label is None:
        return entry
    best = points[label]
    top = max(best, key=lambda t: t.metrics[SELECTION])
    entry["best_config"] = dict(best[0].sweep_values)
    entry["metrics"] = metric_summary(best)
    entry["best_trial_id"] = top.trial_id
    entry["best_artifact_id"] = artifacts.get(top.trial_id)
    if baseline_best is not None and baseline_best is not best:
        entry["delta_vs_baseline"] = deltas_vs_baseline(best, baseline_best, test, preds)
        entry["seeds_needed"] = seeds_needed_vs(best, baseline_best)
    if pid_of is not None:
        from synib_core.reporting import pid_summary

        per_seed = [pid_of(t.trial_id) for t in best]
        summary = pid_summary([p for p in per_seed if p is not None])
        if summary is not None:
            entry["prediction_pid"] = summary
    return entry


def _cached(preds: PredictionLoader) -> PredictionLoader:
    """``preds`` reading each trial's file once per report."""
    seen: dict[str, np.ndarray | None] = {}

    def load(trial_id: str) -> np.ndarray | None:
        if trial_id not in seen:
            seen[trial_id] = preds(trial_id)
        return seen[trial_id]

    return load


def data_pid(test: TestSplit) -> tuple[dict[str, Any] | None, str | None]:
    """The PID of the test labels ({"pairs", "verdict", "clusters"}) or (None, why not)."""
    if test.pid_states is None:
        return None, test.pid_note
    from synib_core.metrics.pid import PIDUnavailable, pairwise_pid
    from synib_core.metrics.pid_verdict import pid_verdict

    try:
        pairs = pairwise_pid(test.pid_states, test.y)
    except PIDUnavailable as exc:
        return None, f"PID left out: {exc} (on the workers)"
    except Exception as exc:  # the PID is an extra: a solver error never fails the job
        log.warning("the PID of the test labels failed", exc_info=True)
        return None, f"PID left out: {type(exc).__name__}: {exc}"
    out = {"pairs": [p.to_json() for p in pairs], "verdict": pid_verdict(pairs)}
    return {**out, "clusters": test.pid_clusters}, None


def prediction_pid_of(test: TestSplit, preds: PredictionLoader) -> PIDOf:
    """trial_id -> the PID of its test predictions on the job's discretised test inputs."""
    from synib_core.metrics.pid import prediction_pid

    states = test.pid_states
    assert states is not None

    def pid_of(trial_id: str) -> list[dict[str, Any]] | None:
        pred = preds(trial_id)
        if pred is None or pred.shape != test.y.shape:
            return None
        try:
            return [p.to_json() for p in prediction_pid(states, pred)]
        except Exception:  # e.g. the solver's error: that trial's PID is left out
            log.warning("trial %s: the PID of its predictions failed", trial_id, exc_info=True)
            return None

    return pid_of


def verdicts(report: Mapping[str, Any]) -> dict[str, str]:
    """Per method compared with the baseline, one sentence in words: better or worse only when
    the 95% CI of its synergy delta (else overall) excludes 0, otherwise "did not beat"."""
    from synib_core.reporting import verdict

    baseline = str(report["baseline"])
    return {
        method: verdict(method, baseline, entry["delta_vs_baseline"])
        for method, entry in report["methods"].items()
        if method != baseline and entry.get("best_config") is not None
    }


def headlines(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method compared with the baseline, the delta its verdict is about (the synergy_acc
    delta, else test_acc; ``synib_core.reporting.verdict_metric``) with its 95% CI:
    ``{method: {"metric", "delta", "lo", "hi"}}``. The jobs list shows these, without the
    rest of the report."""
    from synib_core.reporting import verdict_metric

    out = {}
    for method, entry in report["methods"].items():
        deltas = entry.get("delta_vs_baseline") or {}
        metric = verdict_metric(deltas)
        if method != report["baseline"] and metric in deltas:
            out[method] = {"metric": metric, **deltas[metric]}
    return out


def build_report(
    *,
    job_id: str,
    spec: JobSpec,
    trials: Sequence[TrialOutcome],
    test: TestSplit,
    preds: PredictionLoader,
    artifacts: Mapping[str, str],
    references: Mapping[str, Any],
) -> dict[str, Any]:
    """The report JSON. ``artifacts``: trial_id -> model artifact id."""
    preds = _cached(preds)
    labels_pid, pid_note = data_pid(test)
    pid_of = prediction_pid_of(test, preds) if labels_pid is not None else None
    baseline = spec.baseline
    methods = list(dict.fromkeys(t.method for t in trials))
    baseline_points = group_points([t for t in trials if t.method == baseline])
    baseline_label = reported_point(baseline, baseline_points, test.n_val)
    baseline_best = baseline_points[baseline_label] if baseline_label is not None else None
    report = {
        "job_id": job_id,
        "baseline": baseline,
        "selection": SELECTION,
        "seeds": sorted({t.seed for t in trials}),
        "sweep_knobs": sorted(axis.knob for axis in spec.sweep),
        "methods": {
            m: method_report(
                m,
                [t for t in trials if t.method == m],
                None if m == baseline else baseline_best,
                test,
                preds,
                artifacts,
                pid_of,
            )
            for m in methods
        },
        "references": dict(references),
        "seeds_needed_for": {"gain": SEEDS_GAIN, "power": SEEDS_POWER, "alpha": SEEDS_ALPHA},
    }
    if labels_pid is not None:
        report["data_pid"] = labels_pid
    if pid_note is not None:
        report["pid_note"] = pid_note
    report["verdicts"] = verdicts(report)
    report["headline"] = headlines(report)
    return report
