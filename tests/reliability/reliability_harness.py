"""Fault injectors and helpers of the reliability tests: a private redis-server, Celery worker
and housekeeper processes that can be SIGKILLed, a TCP proxy in front of PostgreSQL that can be
cut, and polling helpers. Nothing here touches the machine's own Redis (6379) or other
databases.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processes import PROC, children_of, free_port

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float, what: Any, poll: float = 0.25) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` (a str or a callable) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    text = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}")


def live_processes_with(needle: str) -> list[int]:
    """Live (not zombie) processes whose environment contains ``needle``, except this one."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def describe(pids: list[int]) -> str:
    """``pid: command line`` of each process (for failure messages)."""
    lines = []
    for pid in pids:
        try:
            cmd = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "?"
        lines.append(f"{pid}: {cmd[:150]}")
    return "; ".join(lines) or "none"


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class RedisServer:
    """A private ``redis-server`` without persistence: a restart loses every message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 20, f"redis-server on port {self.port}")
        client.close()

    def kill(self) -> None:
        """SIGKILL: the data in memory is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def training_worker_command(concurrency: int) -> list[str]:
    """A ``celery worker`` on queue synib (the training tasks)."""
    celery = Path(sys.executable).parent / "celery"
    command = [str(celery), "-A", "worker.celery_app", "worker", "-Q", "synib"]
    command += ["-c", str(concurrency), "-l", "INFO", "--without-gossip"]
    command += ["--without-mingle", "--without-heartbeat", "-n", f"r1-{secrets.token_hex(3)}@%h"]
    return command


HOUSEKEEPER_COMMAND = [sys.executable, "-m", "worker.cli", "housekeeper", "--log-level", "info"]


@dataclass
class Worker:
    """A Celery worker subprocess (a training worker on queue synib, or ``synib housekeeper``)
    with its log file."""

    env: dict[str, str]
    log_path: Path
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> Worker:
        command = self.command
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
            )
        wait_for(
            lambda: " ready." in self.log() or self.process.poll() is not None,  # type: ignore[union-attr]
            90,
            "the worker to start",
        )
        assert self.process.poll() is None, f"the worker exited:\n{self.log()[-3000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def kill_hard(self) -> list[int]:
        """SIGKILL the worker's main process and its children at once; their pids."""
        assert self.process is not None
        pids = [self.process.pid, *children_of(self.process.pid)]
        kill_all(pids)
        self.process.wait(timeout=10)
        self.process = None
        return pids

    def stop(self) -> None:
        """SIGTERM (warm shutdown), SIGKILL after 30 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_all([self.process.pid, *children_of(self.process.pid)])
                self.process.wait(timeout=10)
        self.process = None


def worker_env(
    *, state_dir: Path, database_url: str, broker_url: str, ray_tmp: Path, **extra: str
) -> dict[str, str]:
    """Environment of a test worker or housekeeper: fast heartbeats and housekeeping (a pass a
    second, a resend 3 s after a send), one thread per trial."""
    env = {
        **os.environ,
        "SYNIB_STATE_DIR": str(state_dir),
        "SYNIB_DATABASE_URL": database_url,
        "SYNIB_BROKER_URL": broker_url,
        "SYNIB_TEST_SANDBOX": str(ray_tmp),
        "SYNIB_CPUS": "2",
        "SYNIB_WORKER_CONCURRENCY": "1",
        "SYNIB_HEARTBEAT_INTERVAL_S": "1",
        "SYNIB_HEARTBEAT_STALE_S": "6",
        "SYNIB_RECONCILE_INTERVAL_S": "1",
        "SYNIB_REQUEUE_QUEUED_AFTER_S": "3",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        **extra,
    }
    env.pop("RAY_ADDRESS", None)
    return env


@dataclass
class Sandbox:
    """One test's state folder, Ray temp dir, database sessions and workers."""

    state_dir: Path
    ray_tmp: Path
    database_url: str
    sessions: Any
    owner_id: str
    workers: list[Worker]

    def worker(self, env: dict[str, str], name: str, concurrency: int = 1) -> Worker:
        """A training worker (queue synib), started."""
        return self._start(env, name, training_worker_command(concurrency))

    def housekeeper(self, env: dict[str, str], name: str = "housekeeper") -> Worker:
        """``synib housekeeper`` (beat + the housekeeping pass), started."""
        return self._start(env, name, HOUSEKEEPER_COMMAND)

    def _start(self, env: dict[str, str], name: str, command: list[str]) -> Worker:
        worker = Worker(env, self.state_dir.parent / f"{name}.log", command)
        self.workers.append(worker)
        return worker.start()

    def logs(self) -> str:
        return "\n".join(w.log()[-3000:] for w in self.workers)
