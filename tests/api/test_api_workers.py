"""``synib api --workers N`` (SYNIB_API_WORKERS): N uvicorn processes on one port, whose
request metrics ``/metrics`` sums whichever process answers the scrape, and which end with
their parent however it ends (SIGKILL included). A real server, started in a process group of
its own and stopped with it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import children_of, free_port, start_group, stop_group, wait_until_gone

from api.observability import MULTIPROCESS_ENV

ME = 'synib_http_requests_total{method="GET",route="/api/v1/me",status="200"}'


@pytest.fixture
def two_workers(db_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNIB_")}
    env.pop(MULTIPROCESS_ENV, None)
    env.update(
        SYNIB_DATABASE_URL=db_url,
        SYNIB_STATE_DIR=str(tmp_path / "state"),
        SYNIB_STATIC_DIR=str(tmp_path / "no-dashboard"),
        SYNIB_CONFIG_DIR=str(tmp_path / "config"),
        SYNIB_API_WORKERS="2",
        SYNIB_LOG_LEVEL="warning",
    )
    log = (tmp_path / "api.log").open("wb")
    argv = [sys.executable, "-m", "worker.cli", "api", "--port", str(port)]
    proc = start_group(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.2)
        yield url, proc
    finally:
        stop_group(proc)  # the server and its children, whatever the test did to the parent
        log.close()


def test_two_api_processes_share_the_port_and_their_metrics(
    two_workers: tuple[str, subprocess.Popen[bytes]],
    user_token: tuple[str, str],
) -> None:
    url, proc = two_workers
    workers = children_of(proc.pid)
    assert len(workers) >= 2, workers  # uvicorn's two processes (and perhaps its helper)
    # Set by `synib api` after it started (its own /proc environ predates it): the children's.
    environ = Path(f"/proc/{workers[0]}/environ").read_text().split("\0")
    metrics_dir = Path(
        dict(line.split("=", 1) for line in environ if "=" in line)[MULTIPROCESS_ENV]
    )
    headers = {"Authorization": f"Bearer {user_token[0]}"}
    sent = 0
    # New connections until both processes have answered some (the kernel picks the process).
    while len({p.name for p in metrics_dir.glob("counter_*.db")}) < 2 or sent < 20:
        assert httpx.get(f"{url}/api/v1/me", headers=headers).status_code == 200
        sent += 1
        assert sent < 500, "one process answered every request"
    for _ in range(4):  # whichever process answers, the count is the sum of both
        body = httpx.get(f"{url}/api/v1/metrics", headers=headers).text
        found = re.search(re.escape(ME) + r" (\S+)", body)
        assert found is not None and float(found.group(1)) == sent, body[:2000]
        assert body.count("# TYPE synib_jobs gauge") == 1
        assert "synib_queue_depth 0.0" in body

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not metrics_dir.exists()  # the shared files are removed with the processes


def _api_workers(pid: int) -> list[int]:
    """The uvicorn worker processes of ``synib api`` ``pid`` (not multiprocessing's helper)."""
    return [
        child
        for child in children_of(pid)
        if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text(errors="replace")
    ]


def test_the_api_processes_end_when_their_parent_is_killed(
    two_workers: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = two_workers
    workers = _api_workers(proc.pid)
    assert len(workers) == 2, workers
    helpers = [p for p in children_of(proc.pid) if p not in workers]
    proc.kill()  # SIGKILL: the parent runs no code to stop them
    proc.wait()
    # The kernel signals each worker at its parent's death (infra/process_lifetime.py); they
    # shut down and stop listening. Generous timeout: a loaded machine may be slow.
    assert wait_until_gone(workers + helpers, timeout_s=60) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)
