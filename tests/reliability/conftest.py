"""Fixtures of the reliability tests that inject infrastructure faults (R1): a private Redis
the tests may kill, a fresh state folder and private Ray temp dir per test, and a user.

Every process a test starts is stopped at its end, and the test fails if a Ray process of its
own (found by its private Ray temp dir in the environment) is still alive afterwards.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_harness import (
    RedisServer,
    Sandbox,
    describe,
    kill_all,
    live_processes_with,
    wait_for,
)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a free port without persistence (the machine's 6379 is never used)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def sandbox(pg_database_url: str, tmp_path: Path) -> Iterator[Sandbox]:
    from infra.db import crud
    from infra.db.session import session_factory

    sessions = session_factory(pg_database_url)
    with sessions() as session:
        owner = crud.create_user(session, name=f"r1-{secrets.token_hex(4)}")
    ray_tmp = Path(
        f"/tmp/srr_{secrets.token_hex(3)}"
    )  # a marker in the environment of the processes this test starts
    box = Sandbox(tmp_path / "state", ray_tmp, pg_database_url, sessions, owner.id, [])
    box.state_dir.mkdir()
    try:
        yield box
    finally:
        for worker in box.workers:
            worker.stop()
        marker = f"SYNIB_TEST_SANDBOX={ray_tmp}"
        try:
            wait_for(
                lambda: not live_processes_with(marker),
                60,
                lambda: f"the test's processes to end: {describe(live_processes_with(marker))}",
            )
        finally:
            kill_all(live_processes_with(marker))  # never leave anything behind
            shutil.rmtree(ray_tmp, ignore_errors=True)
