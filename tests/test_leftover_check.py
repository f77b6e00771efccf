"""The leftover-process check (tests/leftover_check.py) in a pytest run of its own: a run whose
test leaves a process running fails (exit status 1) and names it, orphans included; a run
whose test stops what it starts passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from processes import is_running, wait_until_gone

TESTS = Path(__file__).resolve().parent

LEAKS_AN_ORPHAN = """
import subprocess
from pathlib import Path


def test_leaves_a_process_behind():
    # The shell exits at once: its sleep runs on as an orphan, as a killed server's children do.
    subprocess.run(["sh", "-c", "sleep 300 & echo $! > leaked.pid"], check=True)
    assert Path("leaked.pid").read_text().strip()
"""

STOPS_WHAT_IT_STARTS = """
import subprocess


def test_stops_its_process():
    sleeper = subprocess.Popen(["sleep", "300"])
    sleeper.terminate()
    sleeper.wait()
"""


def _run_pytest(folder: Path, test_source: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_inner.py").write_text(test_source)
    (folder / "pytest.ini").write_text("[pytest]\n")  # not the repository's configuration
    path = [str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "leftover_check", "test_inner.py"]
    command += ["-p", "no:cacheprovider", "-o", "leftover_grace_s=2"]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)


def test_a_run_that_leaves_a_process_fails_and_names_it(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, LEAKS_AN_ORPHAN)
    leaked = int((tmp_path / "leaked.pid").read_text())
    try:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "1 passed" in done.stdout
        assert "processes left running" in done.stdout
        assert f"pid {leaked}: sleep 300" in done.stdout, done.stdout
        assert is_running(leaked)  # the check reports; stopping is the test's job
    finally:
        os.kill(leaked, signal.SIGKILL)
        assert wait_until_gone([leaked], timeout_s=30) == []


def test_a_run_that_stops_what_it_starts_passes(tmp_path: Path) -> None:
    done = _run_pytest(tmp_path, STOPS_WHAT_IT_STARTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "processes left running" not in done.stdout
