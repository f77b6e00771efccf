"""The service benchmarks run end to end with ``--smoke`` (tiny sizes) and print their tables.

Nothing timed is asserted: only that each script exits 0 and prints every table with sane
counts (requests made, no errors, every seeded job listed, targets printed beside the numbers).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from db_testing import redis_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _cpu import ACTORS, TRIALS

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str, timeout_s: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _row(text: str, label: str) -> list[str]:
    """Cells of the Markdown table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no table row {label!r} in:\n{text}")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_api_latency_smoke_prints_its_tables(backend: str) -> None:
    # PostgreSQL with the test Redis as its broker (SYNIB_TEST_REDIS_URL), as in full mode.
    # Each load generator once: the raw HTTP/1.1 client (default) and httpx.
    if backend == "sqlite":
        options = ["--sqlite", "--client", "httpx"]
    else:
        options = ["--broker-url", redis_url(15)]
    out = _run("api_latency.py", *options, timeout_s=120)
    assert ("SQLite" in out) == (backend == "sqlite")
    assert ("concurrent httpx clients" in out) == (backend == "sqlite")
    assert ("concurrent raw clients" in out) == (backend != "sqlite")
    post, get = _row(out, "POST /jobs"), _row(out, "GET /jobs/{id}")
    # columns: endpoint, requests, req/s, p50, p95, p99, server <= 100 ms, errors, target
    assert int(post[1]) > 0 and int(get[1]) > 0
    # The API's own histogram saw both routes (a share, not "nan%": labels parsed).
    assert re.fullmatch(r"\d+\.\d%", post[6]) and re.fullmatch(r"\d+\.\d%", get[6])
    assert post[7] == "0" and get[7] == "0"
    assert re.fullmatch(r"(met|MISSED) \(< 100 ms\)", post[8])
    # --smoke seeds 120 jobs, about 60 % of them succeeded (random mix: counted, not fixed)
    default, largest = _row(out, "default page size (50)"), _row(out, "max page size (200)")
    assert (default[1], default[2]) == ("3", "120")
    assert (largest[1], largest[2]) == ("1", "120")
    succeeded = _row(out, "status=succeeded, default size")
    assert 0 < int(succeeded[2]) < 120
    for name in ("GET /jobs/{id}/metrics", "GET /jobs/{id}/trials", "GET /jobs/{id}/trials.csv"):
        row = _row(out, name)
        assert row[1] == "3" and re.fullmatch(r"(met|MISSED) \(< 150 ms\)", row[5])
    assert "3 trials x 5 epochs x 10 metrics" in out


@pytest.mark.slow
def test_sweep_overhead_smoke_prints_its_table() -> None:
    out = _run("sweep_overhead.py", timeout_s=300)
    assert "## Sweep overhead: 2 trials x 1 epoch(s)" in out
    for label in (
        "direct (compare loop), serial",
        "service, 1 trial at a time",
        "service, 2 trials at a time",
    ):
        wall = float(_row(out, label)[1])
        assert wall > 0
    assert re.search(
        r"service serial / direct: \*\*[\d.]+x\*\* \(target <= 1.3x: (met|MISSED)\)", out
    )
    assert re.search(r"2 trials at a time vs 1: \*\*[\d.]+x\*\* faster", out)
    # Where each job's CPU went. The smoke trials are too short for the meter's 0.5 s samples
    # (their CPU may land on an idle worker's row); the trial actors' start takes seconds.
    assert all(float(c) >= 0 for c in _row(out, TRIALS)[1:3])
    assert all(float(c) > 0 for c in _row(out, ACTORS)[1:3])
    assert re.search(r"the parallel job used [\d.]+ CPU seconds: on \d+ cores it cannot take", out)
    assert re.search(r"processes started during the parallel job \(count, their CPU seconds\)", out)
    # A job's fixed overhead: a first tiny job (it starts the worker's Ray), then more.
    assert float(_row(out, "first job of the worker (starts its Ray)")[1]) > 0
    assert float(_row(out, "tiny job 1")[1]) > 0
    assert re.search(r"fixed overhead \(median tiny job minus the direct work\): \*\*", out)


@pytest.mark.browser
def test_dashboard_load_smoke_measures_every_step() -> None:
    out = _run("dashboard_load.py", timeout_s=180)
    assert "60 jobs in PostgreSQL" in out
    for step in ("page load", "sign-in -> first page", "jump to the last page", "status filter"):
        cells = _row(out, step)
        assert float(cells[1]) > 0 and float(cells[2]) >= float(cells[1])


@pytest.mark.postgres
def test_event_streams_smoke_prints_its_table() -> None:
    out = _run("event_streams.py", timeout_s=120)
    # columns: window, streams open, GET /jobs, p50, p99, max, API RSS MB, DB transactions/s
    idle, streaming = _row(out, "no streams"), _row(out, "10 streams asked")
    assert idle[1] == "0" and streaming[1] == "10"  # 2 tokens x 8: none refused
    assert idle[2] == streaming[2] == "20"
    assert float(streaming[4]) > 0 and float(streaming[6]) > 0
    assert float(streaming[7]) >= 0
    assert "refused" not in out


@pytest.mark.postgres
def test_abuse_smoke_prints_every_phase() -> None:
    out = _run("abuse.py", timeout_s=240)
    for phase in ("baseline", "json-no-token", "upload-no-token", "json-with-token", "20-streams"):
        cells = _row(out, phase)
        # columns: phase, attacker got, peak RSS, victim p50, victim p99, requests, errors, /health
        assert float(cells[2].split()[0]) > 0 and int(cells[5]) > 0
        assert cells[6] == "0", f"the victim saw errors during {phase}: {cells}"
        assert re.fullmatch(r"[\d.]+ \((met|MISSED)\)", cells[4])
    # Without a token, a body is refused as unauthenticated (before it is read).
    assert _row(out, "json-no-token")[1].startswith("401")
    assert _row(out, "upload-no-token")[1].startswith("401")
