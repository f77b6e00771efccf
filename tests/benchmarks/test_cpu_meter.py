"""The sweep benchmark's CPU accounting (``benchmarks/_cpu.py``) on real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _cpu import ACTORS, POOL, REFERENCES, TRIALS, CpuMeter, component

# Busy for ``argv[1]`` CPU seconds; the arguments after it only name the process (its title).
BUSY = (
    "import sys, time\n"
    "end = time.process_time() + float(sys.argv[1])\n"
    "while time.process_time() < end: pass\n"
)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("ray::trial synib|lambda=1|seed=0", TRIALS),
        ("ray::reference_predictions", REFERENCES),
        ("ray::ImplicitFunc.train", ACTORS),
        ("ray::IDLE", POOL),
        ("python .../ray/_private/workers/default_worker.py --raylet-name=/tmp/r/raylet", POOL),
        ("/v/bin/python -m worker.cli worker", "Celery worker (job driver: Tune, database)"),
        ("/v/bin/python -m worker.cli api", "API (answering this benchmark)"),
        ("/v/ray/core/src/ray/raylet/raylet --raylet_socket_name=x", "Ray daemons (raylet, GCS, log monitor, ...)"),
        ("/usr/bin/something-else", "other processes of the service"),
    ],
)  # fmt: skip
def test_a_process_title_names_its_component(title: str, expected: str) -> None:
    assert component(title) == expected


def _busy(cpu_s: float, *title: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BUSY, str(cpu_s), *title])


def test_the_meter_attributes_cpu_of_new_processes_under_the_root() -> None:
    import os

    meter = CpuMeter(os.getpid(), interval_s=0.1).start()
    trial = _busy(0.6, "ray::trial vanilla|seed=0")
    reference = _busy(0.3, "ray::reference_predictions")
    for proc in (trial, reference):
        proc.wait(timeout=30)
    time.sleep(0.05)
    meter.stop()
    seconds = meter.seconds
    # Each child's CPU counts whole (it started after the meter), under its title; a child
    # that ended between two samples loses its last interval (at most 0.1 s here).
    assert 0.45 <= seconds.get(TRIALS, 0.0) <= 0.8
    assert 0.15 <= seconds.get(REFERENCES, 0.0) <= 0.5


def test_attribution_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that is ever a Tune actor counts as one from its start; the interval in which
    a task ended goes to the task, not to the idle title seen at its end."""
    import _cpu

    cpu: dict[str, float] = {"10": 0.0, "11": 0.0}
    titles = {"10": "ray::IDLE", "11": "ray::IDLE"}
    monkeypatch.setattr(CpuMeter, "_tree", lambda self: dict(cpu))
    monkeypatch.setattr(_cpu, "_read_title", lambda pid: titles[pid])
    meter = CpuMeter(1)
    meter.sample()  # the baseline (start() without its thread)
    meter._started = True
    steps = [  # (CPU seconds of 10 and 11 at the sample, their titles then)
        ((1.0, 0.5), ("ray::IDLE", "ray::trial a")),  # 10 starts (imports) as an idle worker
        ((1.5, 1.5), ("ray::ImplicitFunc.train", "ray::trial a")),
        ((1.6, 2.2), ("ray::ImplicitFunc.train", "ray::IDLE")),  # trial a ended meanwhile
        ((1.6, 2.25), ("ray::ImplicitFunc.train", "ray::IDLE")),
    ]
    for (a, b), (ta, tb) in steps:
        cpu.update({"10": a, "11": b})
        titles.update({"10": ta, "11": tb})
        meter.sample()
    assert meter.seconds == pytest.approx({ACTORS: 1.6, TRIALS: 2.2, POOL: 0.05})
