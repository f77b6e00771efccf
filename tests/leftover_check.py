"""pytest plugin (loaded by tests/conftest.py): a test run must end with no process of its own
left running, or it fails (exit status 1) and lists them.

At start the run puts ``RUN_MARKER_ENV=<token>`` in its environment; every process a test
starts inherits it, and so do their children, also once their parent is gone (the orphans of
a killed server). At the end, after every fixture is torn down, a local Ray that a test started
in this process (``ray.init``) is shut down, and the processes that carry the token or descend
from pytest get ``leftover_grace_s`` (an ini option, default 30 s) to exit; those still running
fail the run.
"""

from __future__ import annotations

import os
import secrets
import sys
import time

import pytest
from processes import RUN_MARKER_ENV, leftover_processes

LEFTOVER_GRACE_S = 30.0
_LEFTOVERS = pytest.StashKey[dict[int, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "leftover_grace_s",
        "seconds the processes of a finished run get to exit before they fail it",
        default=str(LEFTOVER_GRACE_S),
    )


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_MARKER_ENV] = secrets.token_hex(8)


def _shutdown_ray() -> None:
    """End the local Ray a test started in this process (its daemons are this run's too)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _leftovers(grace_s: float) -> dict[int, str]:
    marker, me = os.environ[RUN_MARKER_ENV], os.getpid()
    deadline = time.monotonic() + grace_s
    left = leftover_processes(marker, me)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftover_processes(marker, me)
    return left


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if RUN_MARKER_ENV not in os.environ:
        return
    _shutdown_ray()
    left = _leftovers(_grace_s(session.config))
    session.config.stash[_LEFTOVERS] = left
    if left and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _grace_s(config: pytest.Config) -> float:
    return float(str(config.getini("leftover_grace_s")))


def _reason(command: str) -> str:
    if "ray" in command:
        return "a Ray process still running after ray.shutdown()"
    return "started by this test run"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    left = config.stash.get(_LEFTOVERS, {})
    if not left:
        return
    terminalreporter.section("processes left running", sep="=", red=True, bold=True)
    terminalreporter.line(
        f"{len(left)} process(es) of this test run still run {_grace_s(config):g} s after its "
        "end (a test must stop what it starts, children included):",
        red=True,
    )
    for pid, command in sorted(left.items()):
        terminalreporter.line(f"  pid {pid}: {command[:200]} ({_reason(command)})")
