"""synib_core.reporting: the comparison report and its table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synib_core.metrics import paired_bootstrap_ci
from synib_core.reporting import RunRecord, compare_report, format_table, run_record, verdict

Y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
REFS = {"a": np.array([0, 1, 1, 0, 0, 1, 1, 0]), "b": np.array([0, 0, 1, 0, 0, 1, 1, 1])}
# synergy subset (both refs wrong): samples 2, 3, 6


def _records() -> list[RunRecord]:
    preds = {
        ("vanilla", 0): np.array([0, 1, 1, 0, 0, 1, 1, 1]),  # 5/8, synergy 0/3
        ("vanilla", 1): np.array([0, 1, 1, 1, 0, 1, 1, 1]),  # 6/8, synergy 1/3
        ("synib", 0): np.array([0, 1, 0, 1, 0, 1, 1, 1]),  # 7/8, synergy 2/3
        ("synib", 1): np.array([0, 1, 0, 1, 0, 1, 0, 1]),  # 8/8, synergy 3/3
    }
    records = []
    for (method, seed), pred in preds.items():
        metrics = {"test_acc": float(np.mean(pred == Y)), "val_acc": 0.5 + seed / 10}
        if method == "synib" and seed == 1:
            metrics["synergy_acc"] = 1.0
        config = {"lambda": 10.0} if method == "synib" else {}
        records.append(run_record(method, seed, metrics, pred, Y, ref_preds=REFS, config=config))
    return records


def test_report_stats_and_deltas() -> None:
    records = _records()
    report = compare_report(records, references={0: {"a": {"test_acc": 0.5}}}, n_boot=300)
    assert report["baseline"] == "vanilla" and report["seeds"] == [0, 1]
    synib = report["methods"]["synib"]
    acc = synib["metrics"]["test_acc"]
    assert acc["values"] == [0.875, 1.0]
    assert acc["mean"] == pytest.approx(0.9375)
    assert acc["std"] == pytest.approx(np.std([0.875, 1.0], ddof=1))
    assert synib["metrics"]["synergy_acc"]["values"] == [None, 1.0]  # seed 0 lacks it
    assert synib["best_config"] == {"lambda": 10.0}
    delta = synib["delta_vs_baseline"]["test_acc"]
    assert delta["delta"] == pytest.approx(0.9375 - 0.6875)
    assert delta["lo"] <= delta["delta"] <= delta["hi"]
    syn = synib["delta_vs_baseline"]["synergy_acc"]
    assert syn["delta"] == pytest.approx((2 / 3 + 1) / 2 - (0 + 1 / 3) / 2)
    a = np.stack([r.test_correct for r in records if r.method == "synib"])
    b = np.stack([r.test_correct for r in records if r.method == "vanilla"])
    mask = np.stack([r.synergy_mask for r in records if r.method == "vanilla"])  # type: ignore[misc]
    assert (syn["delta"], syn["lo"], syn["hi"]) == paired_bootstrap_ci(a, b, mask=mask, n_boot=300)
    assert "delta_vs_baseline" not in report["methods"]["vanilla"]
    assert report["references"] == {"0": {"a": {"test_acc": 0.5}}}
    json.dumps(report)  # JSON-serialisable


def test_report_without_references_has_no_synergy_delta() -> None:
    records = [
        run_record(m, 0, {"test_acc": 0.5}, np.array([0, 1]), np.array([0, 0]))
        for m in ("vanilla", "synib")
    ]
    report = compare_report(records, n_boot=50)
    assert set(report["methods"]["synib"]["delta_vs_baseline"]) == {"test_acc"}
    assert report["methods"]["synib"]["metrics"]["test_acc"]["std"] == 0.0


def test_report_errors() -> None:
    with pytest.raises(ValueError, match="records"):
        compare_report([])
    rec = run_record("vanilla", 0, {}, np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="two runs"):
        compare_report([rec, rec])
    with pytest.raises(ValueError, match="test_pred"):
        run_record("vanilla", 0, {}, np.array([0, 1]), np.array([0]))


def test_format_table() -> None:
    table = format_table(compare_report(_records(), n_boot=100))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["method", "val_acc", "test_acc"]
    assert set(lines[1]) <= {"-", " "}
    synib = next(line for line in lines if line.startswith("synib"))
    assert "0.938 ± 0.088" in synib and "+0.250 [" in synib
    vanilla = next(line for line in lines if line.startswith("vanilla"))
    assert vanilla.rstrip().endswith("-")  # no delta for the baseline itself
    assert any(line.startswith("baseline: vanilla; seeds: 0, 1") for line in lines)
    assert any(line.startswith("synib vs vanilla: synergy_acc +") for line in lines)


@pytest.mark.parametrize(
    ("lo", "hi", "words"),
    [
        (0.01, 0.2, "the 95% CI is above 0: synib beat vanilla on the synergy subset."),
        (-0.05, 0.2, "the 95% CI includes 0: synib did not beat vanilla on the synergy subset"),
        (-0.3, -0.01, "the 95% CI is below 0: synib was worse than vanilla on the synergy subset."),
    ],
)
def test_verdict_says_in_words_whether_the_ci_excludes_zero(
    lo: float, hi: float, words: str
) -> None:
    deltas = {"synergy_acc": {"delta": (lo + hi) / 2, "lo": lo, "hi": hi}}
    line = verdict("synib", "vanilla", deltas)
    assert line.startswith("synib vs vanilla: synergy_acc ") and line.endswith(
        (words, words + " (no winner).")
    )
    assert ("no winner" in line) == (lo <= 0 <= hi)


def test_verdict_falls_back_to_overall_accuracy() -> None:
    line = verdict("synib", "vanilla", {"test_acc": {"delta": 0.0, "lo": -0.1, "hi": 0.1}})
    assert "test_acc +0.000 [-0.100, +0.100]" in line and "overall (no winner)" in line
    assert "no paired delta" in verdict("synib", "vanilla", {})
