"""A real ``synib api`` stopped with SIGTERM while a client follows a job that never ends: the
stream ends at once with ``event: error`` (the client reconnects elsewhere with Last-Event-ID)
and the server exits instead of waiting for the job."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_factories import add_job
from processes import running_api
from sqlalchemy.orm import Session

from infra.db.models import Dataset


@pytest.fixture
def api_process(db_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``synib api`` (one process) on the test database, stopped afterwards if still running."""
    with running_api(db_url, tmp_path) as (url, proc):
        yield url, proc


def test_sigterm_ends_open_streams_and_the_server(
    api_process: tuple[str, subprocess.Popen[bytes]],
    db_session: Session,
    dataset: Dataset,
    user_token: tuple[str, str],
) -> None:
    url, proc = api_process
    job = add_job(db_session, user_token[1], dataset.id, status="running")  # never ends
    headers = {"Authorization": f"Bearer {user_token[0]}"}
    timeout = httpx.Timeout(10, read=30)
    with httpx.stream(
        "GET", f"{url}/api/v1/jobs/{job.id}/events", headers=headers, timeout=timeout
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received: list[str] = []
        while sum(line.startswith("data: ") for line in received) < 2:  # queued, running
            received.append(next(lines))
        assert '"status":"running"' in received[-1]
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20  # keep-alives come every 15 s while a stream lasts
        for line in lines:
            received.append(line)
            assert time.monotonic() < deadline, f"the stream outlived SIGTERM: {received}"

    assert received[-3:] == ["event: error", 'data: {"detail": "server shutting down"}', ""]
    proc.wait(timeout=15)
