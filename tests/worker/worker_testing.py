"""Helpers of the worker tests: waiting, finding Ray processes, the worker harness, tiny specs."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db_testing import redis_url
from processes import runs_ray_work

REPO = Path(__file__).resolve().parents[2]
BROKER_URL = redis_url(14)  # the test Redis (SYNIB_TEST_REDIS_URL), a database of its own
MARKER_ENV = "SYNIB_TEST_WORKER"  # in a test worker's environment, inherited by its processes
RAY_PROCESS = re.compile(r"raylet|gcs_server|ray::|/ray/|default_worker\.py")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.25) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ray_pids(marker: str) -> set[int]:
    """PIDs of Ray processes (by command line) whose environment holds ``marker``.

    Ray processes inherit the environment of the process that started Ray, so a test worker's
    marker (``MARKER_ENV=<token>``) tells its Ray apart from any other Ray on the machine.
    """
    pids = set()
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            if RAY_PROCESS.search(cmdline) and needle in (entry / "environ").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def busy_ray_pids(marker: str) -> set[int]:
    """The Ray processes of ``ray_pids(marker)`` that run a task or an actor (a trial's
    ``ray::ImplicitFunc``, a reference model): not Ray's daemons and agents
    (``ray::DashboardAgent``), nor idle worker processes (``ray::IDLE``)."""
    return {pid for pid in ray_pids(marker) if runs_ray_work(pid)}


@dataclass
class WorkerHarness:
    """The settings the worker runs with, a session factory on its database, and its log."""

    settings: Any
    sessions: Any
    log_path: Path
    process: subprocess.Popen[bytes]
    marker: str  # MARKER_ENV=<token>: in the environment of the worker's processes

    def send(self, task: str, object_id: str) -> None:
        from infra.broker import TaskProducer

        producer = TaskProducer(self.settings)
        try:
            assert producer.send(task, object_id) is not None, f"could not send {task}"
        finally:
            producer.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def tiny_pid_params() -> dict[str, Any]:
    """A small xor_pid dataset (trials of a few tenths of a second per epoch)."""
    return {"n_train": 200, "n_val": 60, "n_test": 300}


def tiny_config() -> dict[str, Any]:
    return {"hidden": 16, "encoder_layers": 1, "fusion_hidden": 16, "batch_size": 64}
