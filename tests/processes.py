"""Process helpers shared by the test tiers: a free loopback port, a process's children, servers
started in a process group of their own and stopped with it, and the processes a test run left
behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

PROC = Path("/proc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, ...]; None when gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat)."""
    kids = []
    for child in _pids():
        fields = _stat_fields(child)
        if fields is not None and int(fields[1]) == pid:
            kids.append(child)
    return kids


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (exited, waiting for its parent to reap it)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def runs_ray_work(pid: int) -> bool:
    """Whether ``pid`` is a Ray worker process running a task or an actor (its title
    ``ray::<name>``: a trial's ``ray::ImplicitFunc``, a reference model), not one of Ray's
    agents (``ray::DashboardAgent``) nor an idle worker process (``ray::IDLE``)."""
    if not is_running(pid):
        return False
    title = command_line(pid).split(" ", 1)[0]
    return title.startswith("ray::") and title != "ray::IDLE" and not title.endswith("Agent")


def start_group(argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``argv`` as the leader of a new session and process group: ``stop_group`` then stops
    it with every process it started, however it ends."""
    return subprocess.Popen(argv, start_new_session=True, **popen)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL to what is left after ``grace_s``; the
    group's processes are gone when this returns (orphans of the leader included)."""
    group = proc.pid  # start_group made it the group's leader: its pid is the group's id
    _signal_group(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    deadline = time.monotonic() + grace_s
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
    proc.wait()
    while _group_members(group):
        time.sleep(0.05)


@contextlib.contextmanager
def running_api(
    database_url: str, state: Path, **settings: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``synib api`` (one process) on a free port, in a process group of its own, on
    ``database_url`` with its files under ``state`` and ``SYNIB_<NAME>`` for each keyword
    (``body_read_timeout_s="2"``); yields (its URL, the process) once /health answers, and stops
    the group afterwards (a test may have stopped the process already)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNIB_")}
    env.update(
        SYNIB_DATABASE_URL=database_url,
        SYNIB_STATE_DIR=str(state / "state"),
        SYNIB_STATIC_DIR=str(state / "no-dashboard"),
        SYNIB_CONFIG_DIR=str(state / "config"),
        SYNIB_LOG_LEVEL="warning",
    )
    env.update({f"SYNIB_{name.upper()}": value for name, value in settings.items()})
    log_path = state / "api.log"
    argv = [sys.executable, "-m", "worker.cli", "api", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = start_group(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield url, proc
    finally:
        stop_group(proc)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_members(group: int) -> list[int]:
    members = []
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[2]) == group and fields[0] not in ("Z", "X"):
            members.append(pid)
    return members


def wait_until_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Poll until none of ``pids`` is running or ``timeout_s`` passed; those still running."""
    deadline = time.monotonic() + timeout_s
    running = [p for p in pids if is_running(p)]
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        running = [p for p in running if is_running(p)]
    return running


# --- what a test run left behind ----------------------------------------------------------------

RUN_MARKER_ENV = "PYTEST_SYNIB_RUN"
"""Set to a token of the run in the test process's environment (not ``SYNIB_``: tests drop
those from a server's environment): every process a test starts inherits it (its children
too, Ray's daemons included), also once its parent is gone."""


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        return needle in (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:  # another user's process, or gone
        return False


def _descends_from(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    seen = set()
    while pid in parents and pid not in seen:
        seen.add(pid)
        pid = parents[pid]
        if pid == ancestor:
            return True
    return False


def leftover_processes(marker: str, test_pid: int) -> dict[int, str]:
    """Running processes of this test run, other than ``test_pid`` itself: those whose
    environment holds ``RUN_MARKER_ENV=marker`` and those descended from ``test_pid``;
    pid -> command line."""
    needle = f"{RUN_MARKER_ENV}={marker}".encode()
    parents = {}
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is not None and fields[0] not in ("Z", "X"):
            parents[pid] = int(fields[1])
    found = {}
    for pid in parents:
        if pid == test_pid:
            continue
        if _environ_has(pid, needle) or _descends_from(pid, test_pid, parents):
            found[pid] = command_line(pid)
    return {pid: cmd for pid, cmd in found.items() if is_running(pid)}


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()
