"""benchmarks/cluster.py runs end to end with ``--smoke``: the local Ray run, the 2-node
loopback cluster run and the raylet-kill run each print their row (nothing timed asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cluster_benchmark_smoke_prints_every_run() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cluster.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for label in (
        "local Ray, 2 CPUs",
        "2-node loopback cluster, 1+1 CPUs",
        "cluster, node2 SIGKILLed mid-job",
    ):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label}"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "8", row  # every trial succeeded
        assert float(cells[2]) > 0 and float(cells[4]) > 0, row  # wall time, storage used
    assert re.search(r"recovery after the raylet kill: \d+\.\d s", out), out
