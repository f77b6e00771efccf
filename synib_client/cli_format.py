"""Plain-text tables for the ``synib`` service commands (jobs, datasets, the job report)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; ``None`` cells print as ``-``."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _mean_std(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    std = stat.get("std")
    return f"{stat['mean']:.3f} +- {std:.3f}" if std is not None else f"{stat['mean']:.3f}"


def _delta(stat: dict[str, Any] | None) -> str:
    if not stat or stat.get("delta") is None:
        return "-"
    return f"{stat['delta']:+.3f} [{stat['lo']:+.3f}, {stat['hi']:+.3f}]"


def _config_text(config: dict[str, Any] | None) -> str:
    if not config:
        return "-"
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items())


def format_report(report: dict[str, Any]) -> str:
    """The job report as a table: per method the selected config, test and synergy accuracy
    (mean +- std over seeds) and the delta vs the baseline with its 95% CI; below it the report's
    verdicts in words (did a method beat the baseline, or does its CI include 0).

    ``report``: the JSON of ``GET /api/v1/jobs/{id}/report`` (docs/USER_GUIDE.md, "The report").
    """
    baseline = report.get("baseline", "vanilla")
    methods: dict[str, Any] = report.get("methods", {})
    order = sorted(methods, key=lambda name: (name != baseline, list(methods).index(name)))
    rows = []
    for name in order:
        entry = methods[name]
        metrics = entry.get("metrics", {})
        deltas = entry.get("delta_vs_baseline") or {}
        is_base = name == baseline
        rows.append(
            [
                name,
                _config_text(entry.get("best_config")),
                _mean_std(metrics.get("test_acc")),
                _mean_std(metrics.get("synergy_acc")),
                "baseline" if is_base else _delta(deltas.get("test_acc")),
                "baseline" if is_base else _delta(deltas.get("synergy_acc")),
            ]
        )
    headers = [
        "method",
        "best config",
        "test_acc",
        "synergy_acc",
        "delta test_acc [95% CI]",
        "delta synergy_acc [95% CI]",
    ]
    seeds = ",".join(str(s) for s in report.get("seeds", []))
    title = (
        f"job {report.get('job_id', '?')}  baseline {baseline}  "
        f"selection {report.get('selection', 'val_acc')}  seeds {seeds or '-'}"
    )
    if any(methods[name].get("prediction_pid") for name in order):
        headers.append("pred. synergy bits")
        for row, name in zip(rows, order, strict=True):
            row.append(_pid_synergy(methods[name].get("prediction_pid")))
    verdicts = [str(v) for v in (report.get("verdicts") or {}).values()]
    lines = [title, format_table(headers, rows), *_pid_lines(report), *verdicts]
    return "\n".join(lines)


def _pid_synergy(pid: dict[str, Any] | None) -> str:
    """A method's synergy of its predictions in bits (mean +- std over seeds), per pair."""
    if not pid:
        return "-"
    if len(pid) == 1:
        return _mean_std(next(iter(pid.values())).get("synergy"))
    return "; ".join(f"{pair} {_mean_std(v.get('synergy'))}" for pair, v in pid.items())


def _pid_lines(report: dict[str, Any]) -> list[str]:
    """The data PID's verdict (or why there is no PID) and the seeds-needed line."""
    lines = []
    data = report.get("data_pid")
    if data:
        lines.append(f"PID of the test labels: {data.get('verdict')}")
    elif report.get("pid_note"):
        lines.append(str(report["pid_note"]))
    power = report.get("seeds_needed_for") or {}
    needed = [
        f"{name} " + ", ".join(f"{k} {n}" for k, n in entry["seeds_needed"].items())
        for name, entry in report.get("methods", {}).items()
        if entry.get("seeds_needed")
    ]
    if needed:
        gain, pw = 100 * power.get("gain", 0.05), 100 * power.get("power", 0.8)
        lines.append(
            f"seeds needed to detect +{gain:g} points with {pw:g}% power (vs "
            f"{report.get('baseline', 'vanilla')}): {'; '.join(needed)}"
        )
    return lines


def format_pid(pid: dict[str, Any]) -> str:
    """A dataset's PID (``pid`` of ``GET /datasets/{id}``): one row per pair of modalities with
    redundancy, each unique information, synergy and the total, in bits; then the verdict."""
    rows = []
    for pair in pid.get("pairs") or []:
        m1, m2 = pair["modalities"]
        unique = pair.get("unique", {})
        rows.append(
            [
                f"{m1}+{m2}",
                f"{pair['redundancy']:.3f}",
                f"{m1} {unique.get(m1, 0.0):.3f}",
                f"{m2} {unique.get(m2, 0.0):.3f}",
                f"{pair['synergy']:.3f}",
                f"{pair['total']:.3f}",
            ]
        )
    headers = ["pair", "redundancy", "unique", "unique", "synergy", "total (bits)"]
    head = f"PID of the labels ({pid.get('clusters')} clusters per modality)"
    return "\n".join([head, format_table(headers, rows), f"verdict: {pid.get('verdict')}"])


def format_jobs(jobs: Sequence[dict[str, Any]]) -> str:
    """One row per JobPublic: id, name, status, trials done/total, created."""
    rows = [
        [
            job["id"],
            job.get("name"),
            job.get("status"),
            f"{job.get('trials_done', 0)}/{job.get('trials_total', 0)}",
            str(job.get("created_at", ""))[:19],
        ]
        for job in jobs
    ]
    return format_table(["id", "name", "status", "trials", "created"], rows)


def format_datasets(datasets: Sequence[dict[str, Any]]) -> str:
    """One row per DatasetPublic: id, name, source, status, classes, sizes."""
    rows = []
    for ds in datasets:
        summary = ds.get("summary") or {}
        splits = summary.get("split_sizes") or {}
        sizes = (
            "/".join(str(splits.get(k, "?")) for k in ("train", "val", "test")) if splits else None
        )
        source = ds.get("builtin_name") or ds.get("source")
        rows.append(
            [ds["id"], ds.get("name"), source, ds.get("status"), summary.get("num_classes"), sizes]
        )
    return format_table(["id", "name", "source", "status", "classes", "train/val/test"], rows)


def format_job(job: dict[str, Any]) -> str:
    """A job's fields, then its best trial per method (config: the swept knobs only)."""
    lines = [
        f"{key:<15}{job.get(key)}"
        for key in ("id", "name", "status", "dataset_id", "created_at", "started_at", "finished_at")
    ]
    lines.append(f"{'trials':<15}{job.get('trials_done', 0)}/{job.get('trials_total', 0)}")
    lines.append(f"{'progress':<15}{100 * float(job.get('progress') or 0):.0f}%")
    if job.get("failure_reason"):
        lines.append(f"{'failure':<15}{job['failure_reason']}")
    best = job.get("best") or {}
    swept = set((job.get("spec") or {}).get("sweep") or {})
    if best:
        rows = [
            [
                m,
                _config_text({k: v for k, v in (b.get("config") or {}).items() if k in swept}),
                _num(b.get("val_acc")),
                _num(b.get("test_acc")),
                _num(b.get("synergy_acc")),
            ]
            for m, b in best.items()
        ]
        lines += [
            "",
            format_table(["method", "config", "val_acc", "test_acc", "synergy_acc"], rows),
        ]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def format_knobs(table: dict[str, Any]) -> str:
    """``GET /api/v1/knobs`` as text: one row per knob (allowed values in words), then the
    methods."""
    knob_rows = [
        [
            k["name"],
            k["type"],
            _default_text(k["default"]),
            k["allowed"] if k["type"] != "str" or k["choices"] else "text",
            "all" if k["methods"] is None else ",".join(k["methods"]),
            k["help"],
        ]
        for k in table["knobs"]
    ]
    method_rows = [[m["name"], m["help"]] for m in table["methods"]]
    return "\n\n".join(
        [
            format_table(
                ["knob", "type", "default", "allowed", "methods", "what it does"], knob_rows
            ),
            format_table(["method", "what it does"], method_rows),
        ]
    )


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "''" if value == "" else str(value)
