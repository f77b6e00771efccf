"""``synib data pid``: text and JSON output, and one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from synib_core.cli import register


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="synib")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def xor_pid_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pid") / "xor_pid.npz"
    assert run_cli(["data", "make", "xor_pid", "--set", "signal=10", "--out", str(path)]) == 0
    return path


def test_json_output_decomposes_the_default_mixture(
    xor_pid_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert run_cli(["data", "pid", str(xor_pid_npz), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 6000 and report["unit"] == "bits" and report["clusters"] is None
    (pair,) = report["pairs"]
    assert pair["modalities"] == ["a", "b"] and pair["states"] == {"a": 12, "b": 12}
    assert pair["synergy"] == pytest.approx(0.10, abs=0.05)  # p = (0.45, 0, 0.45, 0.10)
    assert pair["redundancy"] == pytest.approx(0.45, abs=0.05)
    assert report["verdict"].startswith("some synergy")


def test_text_output_has_one_line_per_pair_and_a_verdict(
    xor_pid_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert run_cli(["data", "pid", str(xor_pid_npz), "--clusters", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("6000 samples, 2 classes; states a 8, b 8")
    assert lines[1].startswith("a + b: redundancy ") and "synergy" in lines[1]
    assert lines[2].startswith("verdict: some synergy")


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--clusters", "1"], "--clusters: expected an integer from 2 to 100, got 1")],
)
def test_bad_options_are_one_line_errors(
    xor_pid_npz: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["data", "pid", str(xor_pid_npz), *extra]) == 2
    assert capsys.readouterr().err.strip() == f"synib data pid: error: {message}"


def test_missing_file_and_missing_solver(
    xor_pid_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert run_cli(["data", "pid", str(tmp_path / "none.npz")]) == 2
    assert capsys.readouterr().err.startswith("synib data pid: error: ")
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy: ModuleNotFoundError
    assert run_cli(["data", "pid", str(xor_pid_npz)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "synib data pid: error: PID estimates need cvxpy: pip install 'synib[pid]'"


def test_compare_runs_the_new_baselines_with_pid_and_seed_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "xor.npz"
    params = ["--set", "n_train=64", "--set", "n_val=32", "--set", "n_test=64", "--set", "dim=12"]
    assert run_cli(["data", "make", "xor_spurious", *params, "--out", str(data)]) == 0
    methods = "vanilla,reconboost,dnr,mcr,agm,mla,pmr"
    tiny = ["--set", "epochs=2", "--set", "hidden=8", "--set", "fusion_hidden=8"]
    out = tmp_path / "cmp"
    argv = ["compare", str(data), "--methods", methods, "--seeds", "0,1", *tiny, "--n-boot", "50"]
    assert run_cli([*argv, "--no-progress", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == methods.split(",")
    assert report["data_pid"]["pairs"][0]["modalities"] == ["a", "b"]
    for method in methods.split(",")[1:]:
        entry = report["methods"][method]
        assert len(entry["metrics"]["test_acc"]["values"]) == 2, method
        assert entry["seeds_needed"]["test_acc"] >= 2, method
        pid = entry["prediction_pid"]["a+b"]
        assert len(pid["synergy"]["values"]) == 2 and pid["total"]["mean"] >= 0, method
    table = capsys.readouterr().out
    assert "PID of the test labels (bits): a+b:" in table
    assert "PID of mla's predictions (bits): a+b:" in table
    assert "seeds needed (pmr vs vanilla, to detect +5 points with 80% power" in table
