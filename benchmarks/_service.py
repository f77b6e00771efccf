"""Shared helpers of the service benchmarks: throwaway databases, the API under uvicorn or the
whole service (``synib serve``) in a subprocess on a free port, statistics and Markdown tables.

Nothing here asserts a timing; the scripts print what they measured.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
# The PostgreSQL server of the tests (SYNIB_TEST_DATABASE_URL, what .ci/services.sh exports),
# spelt for libpq (psycopg.connect).
PG_ADMIN_URL = os.environ.get(
    "SYNIB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+psycopg://", "postgresql://", 1)
# Settings a benchmark service must not inherit from the caller's environment.
_FOREIGN_ENV = (
    "SYNIB_URL",
    "SYNIB_TOKEN",
    "SYNIB_DATABASE_URL",
    "SYNIB_BROKER_URL",
    "SYNIB_ARTIFACT_DIR",
    "RAY_ADDRESS",
)


# ---- statistics and tables --------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated ``q``-th percentile (0..100) of ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats with 1 decimal (use strings for other formats)."""

    def cell(v: Any) -> str:
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value_ms: float, target_ms: float) -> str:
    """``"met (< 50 ms)"`` or ``"MISSED (< 50 ms)"``: printed next to a number, never asserted."""
    return f"{'met' if value_ms < target_ms else 'MISSED'} (< {target_ms:g} ms)"


# ---- databases --------------------------------------------------------------------------


def migrate(url: str) -> None:
    """``alembic upgrade head`` on ``url`` (logging left alone)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")


@contextlib.contextmanager
def bench_database(sqlite_dir: Path | None = None) -> Iterator[str]:
    """A migrated, empty database; yields its SQLAlchemy URL.

    PostgreSQL (default): ``synib_bench_<random>`` on the admin server, dropped afterwards.
    SQLite: ``<sqlite_dir>/bench.db`` (the caller removes the folder).
    """
    if sqlite_dir is not None:
        url = f"sqlite:///{sqlite_dir / 'bench.db'}"
        migrate(url)
        yield url
        return
    import psycopg

    name = f"synib_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        url = f"{base}/{name}"
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- processes --------------------------------------------------------------------------


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, a test runner) into SystemExit, so that the context managers
    stop the service and drop the database instead of leaving them behind."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(state_dir: Path, **settings: Any) -> dict[str, str]:
    """The caller's environment minus foreign service settings, plus ``SYNIB_<NAME>`` for each
    keyword (``database_url=...`` -> ``SYNIB_DATABASE_URL``), one thread per BLAS library."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(
        {
            "SYNIB_STATE_DIR": str(state_dir),
            "SYNIB_CONFIG_DIR": str(state_dir / "config"),
            "SYNIB_STATIC_DIR": str(state_dir / "no-dashboard"),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
    )
    env.update({f"SYNIB_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    """Poll ``<url>/api/v1/health`` until 200; RuntimeError with the log's tail otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"not healthy after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM the process group started with ``start_new_session``; SIGKILL what is left."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextlib.contextmanager
def _spawn(
    argv: list[str], env: dict[str, str], state_dir: Path, url: str
) -> Iterator[tuple[Path, int]]:
    """Start ``argv`` in its own session, logging to ``state_dir/service.log``; yields (the log,
    the process id) once ``url`` answers, and stops the process group afterwards."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=state_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_healthy(proc, url, log, timeout_s=180)
        yield log, proc.pid
    finally:
        stop_process_group(proc)


@contextlib.contextmanager
def run_api(
    database_url: str,
    state_dir: Path,
    workers: int = 1,
    broker_url: str = "",  # "": the embedded broker in state_dir
    **settings: Any,
) -> Iterator[str]:
    """``synib api`` (uvicorn at log level warning: no access log; no rate limit to speak of) in
    a subprocess on a free port; yields the root URL. ``settings`` override SYNIB_ values (e.g. ``static_dir=...``
    to serve the dashboard)."""
    port = free_port()
    env = service_env(
        state_dir,
        database_url=database_url,
        broker_url=broker_url,
        rate_limit_per_minute=10**9,
        max_active_jobs_per_user=10**9,  # clients submit jobs no worker runs
        **settings,
    )
    # `synib api` as deployed: several workers share their /metrics (api/observability.py).
    argv = [sys.executable, "-m", "worker.cli", "api", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning", "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with _spawn(argv, env, state_dir, url):
        yield url


@dataclass(frozen=True)
class Service:
    """A running ``synib serve``: root URL, admin token, its state folder, log file and process
    id (the API, the worker and Ray run under it)."""

    url: str
    token: str
    state_dir: Path
    log: Path
    pid: int

    def client(self, timeout_s: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=timeout_s)


@contextlib.contextmanager
def run_serve(state_dir: Path, cpus: int) -> Iterator[Service]:
    """``synib serve`` (embedded: SQLite, SQLite broker, local Ray with ``cpus`` CPUs) on
    a free port with its own state folder."""
    port = free_port()
    env = service_env(
        state_dir, host="127.0.0.1", port=port, cpus=cpus, rate_limit_per_minute=10**6
    )
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "worker.cli", "serve"]
    with _spawn(argv, env, state_dir, url) as (log, pid):
        credentials = json.loads((state_dir / "config" / "credentials.json").read_text())
        yield Service(url, str(credentials["token"]), state_dir, log, pid)
