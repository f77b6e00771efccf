"""Load test of the REST API under uvicorn: concurrent clients submit jobs and read them back.

    python benchmarks/load_test.py [--clients 50] [--duration 60] [--database-url URL]
        [--broker-url redis://127.0.0.1:6379/15] [--json]

Each client (asyncio + httpx, its own user, token, connection and ready dataset) loops
``POST /api/v1/jobs`` (a valid 2-method x 2-seed spec), ``GET /api/v1/jobs/{id}`` of a job it
submitted, ``GET /api/v1/jobs`` until the duration is over. No worker runs: jobs stay queued.
Afterwards every 202 must have its job row (counted in the database) and its broker message.

Backends: a throwaway PostgreSQL database ``synib_load_<random>`` on
postgresql://postgres@127.0.0.1:5432 (migrated with Alembic, dropped at the end) unless
``--database-url`` names one; the embedded broker (a SQLite file) in a temp dir unless
``--broker-url`` (give Redis a database number nobody else uses: its ``synib`` queue is
counted and cleared).
Latency figures depend on the machine's load; nothing is asserted here (tests/reliability/
test_load.py asserts zero errors and no lost submission on a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "SYNIB_LOAD_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SPEC = {"methods": ["vanilla", "synib"], "seeds": [0, 1], "epochs": 2}
EXPECTED = {"submit": 202, "get": 200, "list": 200}


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    jobs_in_db: int = 0
    lost: int = 0
    unexpected_rows: int = 0
    broker_messages: int | None = None

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies_ms.values()) + len(self.errors)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies_ms", "accepted")}
        out.update(requests=self.requests, accepted=len(self.accepted))
        out["latency_ms"] = {op: _stats(v) for op, v in self.latencies_ms.items()}
        out["errors"] = self.errors[:20]
        out["error_count"] = len(self.errors)
        return out


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated q-th percentile (0..100); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _stats(values: list[float]) -> dict[str, float]:
    stats = {f"p{q}": round(percentile(values, q), 2) for q in (50, 95, 99)}
    return {"n": len(values), **stats, "max": round(max(values, default=math.nan), 2)}


# ---- the service under test --------------------------------------------------------------


@contextlib.contextmanager
def throwaway_database(database_url: str | None, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """``database_url`` as given, or a fresh migrated PostgreSQL database dropped afterwards."""
    if database_url:
        yield database_url
        return
    import psycopg
    from alembic import command
    from alembic.config import Config

    name = f"synib_load_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{url}/{name}"
    try:
        cfg = Config(str(REPO / "alembic.ini"))
        cfg.set_main_option("script_location", str(REPO / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "head")
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_clients(database_url: str, clients: int) -> list[tuple[str, str]]:
    """One user per client with a token and a ready dataset: [(token, dataset id)]."""
    from infra.db import crud
    from infra.db.session import make_engine, make_session_factory
    from infra.tokens import issue_token

    engine = make_engine(database_url)
    out = []
    try:
        with make_session_factory(engine)() as session:
            for i in range(clients):
                issued = issue_token(session, user_name=f"load-{i}-{secrets.token_hex(3)}")
                dataset = crud.create_dataset(
                    session,
                    owner_id=issued.user_id,
                    name="load",
                    source="builtin",
                    builtin_name="xor_spurious",
                    params={"seed": 0},
                    status="ready",
                    summary={"modalities": [{"name": "a", "shape": [40, 4]}], "num_classes": 2},
                )
                out.append((issued.token, dataset.id))
    finally:
        engine.dispose()
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_api(database_url: str, broker_url: str, state_dir: Path) -> Iterator[str]:
    """uvicorn api.main:app on a free loopback port (one process); yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNIB_")}
    env.update(
        SYNIB_DATABASE_URL=database_url,
        SYNIB_BROKER_URL=broker_url,
        SYNIB_STATE_DIR=str(state_dir),
        SYNIB_STATIC_DIR=str(state_dir / "no-dashboard"),
        SYNIB_RATE_LIMIT_PER_MINUTE=str(10**9),
        SYNIB_MAX_ACTIVE_JOBS_PER_USER=str(10**9),  # no worker runs the submitted jobs
    )
    argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    log = (state_dir / "uvicorn.log").open("wb")
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn did not start: {(state_dir / 'uvicorn.log').read_text()}"
                )
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# ---- the clients ---------------------------------------------------------------------------


async def _timed(client: httpx.AsyncClient, op: str, method: str, url: str, **kw: Any) -> Any:
    start = time.perf_counter()
    response = await client.request(method, url, **kw)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if response.status_code != EXPECTED[op]:
        raise RuntimeError(f"{op} {url}: HTTP {response.status_code} {response.text[:200]}")
    return response, elapsed_ms


async def _client_loop(
    base_url: str, token: str, dataset_id: str, deadline: float, result: LoadResult
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    own: list[str] = []
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits
    ) as client:
        step = 0
        while time.monotonic() < deadline:
            op = ("submit", "get", "list")[step % 3] if own else "submit"
            step += 1
            try:
                if op == "submit":
                    body = {**SPEC, "dataset_id": dataset_id, "name": f"load-{step}"}
                    response, ms = await _timed(client, op, "POST", "/api/v1/jobs", json=body)
                    own.append(response.json()["id"])
                    result.accepted.append(own[-1])
                elif op == "get":
                    _, ms = await _timed(client, op, "GET", f"/api/v1/jobs/{own[-1]}")
                else:
                    _, ms = await _timed(client, op, "GET", "/api/v1/jobs", params={"limit": 20})
                result.latencies_ms.setdefault(op, []).append(ms)
            except Exception as exc:  # every failure counts, whatever it is
                result.errors.append(f"{type(exc).__name__}: {exc}"[:300])


async def drive(base_url: str, seeds: list[tuple[str, str]], duration_s: float) -> LoadResult:
    result = LoadResult(clients=len(seeds), duration_s=duration_s)
    deadline = time.monotonic() + duration_s
    await asyncio.gather(*(_client_loop(base_url, t, d, deadline, result) for t, d in seeds))
    return result


# ---- bookkeeping ----------------------------------------------------------------------------


def count_jobs(database_url: str) -> set[str]:
    from sqlalchemy import select

    from infra.db.models import Job
    from infra.db.session import make_engine, make_session_factory

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return set(session.scalars(select(Job.id)))
    finally:
        engine.dispose()


def count_broker_messages(broker_url: str, state_dir: Path) -> int | None:
    """Messages waiting in queue ``synib`` (kombu's public API), which is emptied afterwards."""
    from kombu import Connection

    from infra.broker import QUEUE, TaskProducer, transport_options
    from infra.settings import Settings

    settings = Settings(state_dir=state_dir, broker_url=broker_url)
    producer = TaskProducer(settings)
    try:
        count = producer.queue_depth()
    finally:
        producer.close()
    with Connection(settings.broker_url, transport_options=transport_options(settings)) as conn:
        conn.SimpleQueue(QUEUE).clear()
    return count


def run_load(
    clients: int = 50,
    duration_s: float = 60.0,
    *,
    database_url: str | None = None,
    broker_url: str = "",
    pg_admin_url: str = PG_ADMIN_URL,
) -> LoadResult:
    """Start the API, drive ``clients`` clients for ``duration_s``, then audit the database."""
    with (
        tempfile.TemporaryDirectory(prefix="synib_load_") as tmp,
        throwaway_database(database_url, pg_admin_url) as url,
    ):
        state_dir = Path(tmp)
        seeds = seed_clients(url, clients)
        before = count_jobs(url)
        with serve_api(url, broker_url, state_dir) as base_url:
            result = asyncio.run(drive(base_url, seeds, duration_s))
        rows = count_jobs(url) - before
        accepted = set(result.accepted)
        result.jobs_in_db = len(rows)
        result.lost = len(accepted - rows)
        result.unexpected_rows = len(rows - accepted)
        result.broker_messages = count_broker_messages(broker_url, state_dir)
    return result


def format_table(result: LoadResult) -> str:
    lines = [
        f"{result.clients} clients x {result.duration_s:g} s: {result.requests} requests "
        f"({result.requests / result.duration_s:.0f}/s), {len(result.errors)} errors",
        "| operation | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, values in sorted(result.latencies_ms.items()):
        s = _stats(values)
        lines.append(f"| {op} | {s['n']} | {s['p50']} | {s['p95']} | {s['p99']} | {s['max']} |")
    lines.append(
        f"accepted submissions: {len(result.accepted)}, job rows: {result.jobs_in_db}, "
        f"lost: {result.lost}, rows without a 202: {result.unexpected_rows}, "
        f"broker messages: {result.broker_messages}"
    )
    lines.extend(f"error: {e}" for e in result.errors[:10])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--broker-url", default="", help="default: the embedded SQLite broker")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    result = run_load(
        args.clients, args.duration, database_url=args.database_url, broker_url=args.broker_url
    )
    print(json.dumps(result.summary(), indent=1) if args.json else format_table(result))
    ok = not result.errors and result.lost == 0 and result.unexpected_rows == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
