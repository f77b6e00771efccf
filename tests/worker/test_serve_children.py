"""``synib serve`` killed with SIGKILL (it can run no code to stop its children) leaves nothing
running: its api, worker and housekeeper, and their own children, end with it
(infra/process_lifetime.py). A real ``synib serve`` (embedded: SQLite database and broker),
started in a process group of its own and stopped with it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from processes import children_of, free_port, start_group, stop_group, wait_until_gone

REPO = Path(__file__).resolve().parents[2]


def _descendants(pid: int) -> list[int]:
    found = []
    for child in children_of(pid):
        found += [child, *_descendants(child)]
    return found


def _wait_for_children(proc: subprocess.Popen[bytes], url: str, log: Path) -> list[int]:
    """Once the API answers and the worker and housekeeper have started their pools: every
    process under ``synib serve``."""
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            up = httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            up = False
        if up and log.read_text().count(" ready.") >= 2:  # Celery's worker and housekeeper
            return _descendants(proc.pid)
        time.sleep(0.5)


def test_the_children_of_serve_end_when_it_is_killed(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNIB_")}
    env.pop("RAY_ADDRESS", None)
    env.update(
        SYNIB_STATE_DIR=str(tmp_path / "state"),
        SYNIB_CONFIG_DIR=str(tmp_path / "config"),
        SYNIB_STATIC_DIR=str(tmp_path / "no-dashboard"),
        SYNIB_PORT=str(port),
        SYNIB_WORKER_CONCURRENCY="1",
        SYNIB_LOG_LEVEL="info",
        PYTHONPATH=str(REPO),
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = start_group(
            [sys.executable, "-m", "worker.cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        processes = _wait_for_children(proc, f"http://127.0.0.1:{port}", log)
        assert len(children_of(proc.pid)) == 3, processes  # api, worker, housekeeper
        proc.kill()
        proc.wait()
        # Each child gets SIGTERM from the kernel and stops its own children as it does on
        # `synib serve`'s own SIGTERM. Generous timeout: a loaded machine may be slow.
        left = wait_until_gone(processes, timeout_s=120)
        assert left == [], (left, log.read_text()[-3000:])
    finally:
        stop_group(proc)
