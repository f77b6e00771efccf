"""The PID and method-comparison benchmarks run end to end with ``--smoke`` and print their tables
(nothing timed is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_pid_time_prints_the_timing_and_the_ground_truth_tables() -> None:
    out = run("pid_time.py")
    assert "| 2000 | 2 (32x32) |" in out
    xor = next(line for line in out.splitlines() if line.startswith("| XOR bits"))
    assert float(xor.split("|")[-2]) < 0.01  # max error of the XOR estimate


def test_real_signals_prints_a_row_per_method(tmp_path: Path) -> None:
    from synib_core.config import METHODS

    out = run("real_signals.py", "--results", str(tmp_path))
    table = out[out.index("## Every method") :].split("## Calibration")[0]
    rows = [line.split("|")[2].split(" (")[0].strip() for line in table.splitlines()
            if line.startswith("| xor_pid")]  # fmt: skip
    assert sorted(rows) == sorted(METHODS)
