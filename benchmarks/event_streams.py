"""Open event streams as a load on everyone else: another user's ``GET /api/v1/jobs`` latency
and the API's memory with 0 and with ``--streams`` open streams, on a throwaway PostgreSQL
database (or SQLite).

    python benchmarks/event_streams.py [--streams 200] [--requests 300] [--jobs 50]
        [--per-token 8] [--sqlite] [--smoke]

One ``synib api`` process. User A follows ``--jobs`` running jobs that never end with
``--streams`` streams, ``--per-token`` per token (the default cap: 25 tokens for 200 streams);
the streams are raw sockets in a thread of this script, read as data comes. User B, who owns 20
finished jobs, sends ``--requests`` ``GET /api/v1/jobs`` one after another on one keep-alive
connection, before the streams are opened and while they are open. Also printed: the API's
RSS (``/proc/<pid>/status``) and the database transactions per second while only the streams
use the API (PostgreSQL's ``pg_stat_database``, commits and rollbacks, over ``--idle-s``
seconds before each window). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _seed import make_user, ready_dataset
from _service import (
    _spawn,
    bench_database,
    exit_on_sigterm,
    free_port,
    markdown_table,
    percentile,
    service_env,
)
from sqlalchemy import text

from infra.db import crud
from infra.db.session import make_engine, make_session_factory
from infra.tokens import issue_token


@dataclass(frozen=True)
class Seeded:
    streamer_tokens: list[str]
    running_jobs: list[str]
    reader_token: str


def seed(url: str, n_tokens: int, n_jobs: int) -> Seeded:
    """User A with ``n_tokens`` tokens and ``n_jobs`` running jobs; user B with 20 finished."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        token_a, user_a = make_user(session, "streamer")
        tokens = [token_a] + [
            issue_token(session, user_name="streamer", token_name=f"t{i}").token
            for i in range(1, n_tokens)
        ]
        dataset_a = ready_dataset(session, user_a)
        jobs = [_job(session, user_a, dataset_a, "running") for _ in range(n_jobs)]
        token_b, user_b = make_user(session, "reader")
        dataset_b = ready_dataset(session, user_b)
        for _ in range(20):
            _job(session, user_b, dataset_b, "succeeded")
    engine.dispose()
    return Seeded(tokens, jobs, token_b)


def _job(session: object, owner_id: str, dataset_id: str, status: str) -> str:
    spec = {"methods": ["vanilla"], "seeds": [0], "dataset_id": dataset_id}
    job = crud.create_job(
        session,  # type: ignore[arg-type]
        owner_id=owner_id,
        dataset_id=dataset_id,
        name="job",
        spec=spec,
        trials_total=1,
    )
    crud.claim_job(session, job_id=job.id, worker="bench")  # type: ignore[arg-type]
    if status != "running":
        crud.set_job_status(session, job_id=job.id, status=status)  # type: ignore[arg-type]
    return job.id


class Streams:
    """Event streams held open by an asyncio loop in a thread (raw HTTP/1.1, read as it comes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.statuses: list[int] = []
        self.loop = asyncio.new_event_loop()
        self._writers: list[asyncio.StreamWriter] = []
        self._drains: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def open(self, paths_and_tokens: list[tuple[str, str]]) -> None:
        coros = [self._open(path, token) for path, token in paths_and_tokens]
        future = asyncio.run_coroutine_threadsafe(_gather(coros), self.loop)
        future.result(timeout=120)

    async def _open(self, path: str, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.statuses.append(status)
        self._writers.append(writer)
        if status == 200:
            await reader.readuntil(b": connected\n\n")
            self._drains.append(asyncio.create_task(_drain(reader)))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    async def _close(self) -> None:
        for writer in self._writers:
            writer.close()
        for task in self._drains:
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)


async def _gather(coros: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*coros)


async def _drain(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


def list_latencies_ms(url: str, token: str, n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    samples = []
    with httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=60) as client:
        client.get("/jobs").raise_for_status()  # connect and warm up
        for _ in range(n):
            start = time.perf_counter()
            client.get("/jobs").raise_for_status()
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def transactions(url: str) -> int | None:
    """Transactions ended (committed or rolled back) on the database so far (PostgreSQL),
    else None."""
    if not url.startswith("postgresql"):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            query = (
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
            return int(conn.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


@contextlib.contextmanager
def api(url: str, state_dir: Path) -> Iterator[tuple[str, int, int]]:
    """``synib api`` on ``url``: yields (root URL, port, process id)."""
    port = free_port()
    env = service_env(state_dir, database_url=url, rate_limit_per_minute=10**9)
    argv = [sys.executable, "-m", "worker.cli", "api", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    root = f"http://127.0.0.1:{port}"
    with _spawn(argv, env, state_dir, root) as (_log, pid):
        yield root, port, pid


def idle_transactions_per_s(url: str, seconds: float) -> str:
    """Transactions per second on the database while nobody but the streams uses the API
    (PostgreSQL flushes a busy backend's counts about once a second: a window of seconds)."""
    before, start = transactions(url), time.monotonic()
    time.sleep(seconds)
    after = transactions(url)
    if before is None or after is None:
        return "n/a"
    return f"{(after - before) / (time.monotonic() - start):.1f}"


def window(label: str, opened: int, base: str, pid: int, args: argparse.Namespace,
           token: str, transactions_per_s: str) -> list[object]:  # fmt: skip
    samples = list_latencies_ms(base, token, args.requests)
    return [
        label,
        opened,
        len(samples),
        f"{percentile(samples, 50):.1f}",
        f"{percentile(samples, 99):.1f}",
        f"{max(samples):.1f}",
        f"{rss_mb(pid):.0f}",
        transactions_per_s,
    ]


def measure(
    url: str, base: str, port: int, pid: int, seeded: Seeded, args: argparse.Namespace
) -> tuple[list[list[object]], dict[int, int]]:
    token = seeded.reader_token
    rows = [
        window("no streams", 0, base, pid, args, token, idle_transactions_per_s(url, args.idle_s))
    ]
    streams = Streams(port)
    try:
        wanted = [
            (
                f"/api/v1/jobs/{seeded.running_jobs[i % len(seeded.running_jobs)]}/events",
                seeded.streamer_tokens[i // args.per_token],
            )
            for i in range(args.streams)
        ]
        streams.open(wanted)
        opened = streams.statuses.count(200)
        idle = idle_transactions_per_s(url, args.idle_s)
        rows.append(window(f"{args.streams} streams asked", opened, base, pid, args, token, idle))
    finally:
        streams.close()
    refused = {s: streams.statuses.count(s) for s in set(streams.statuses) if s != 200}
    return rows, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--per-token", type=int, default=8)
    parser.add_argument("--idle-s", type=float, default=6.0, help="window of DB transactions/s")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="10 streams, 20 requests")
    args = parser.parse_args(argv)
    if args.smoke:
        args.streams, args.requests, args.jobs, args.idle_s = 10, 20, 3, 1.0
    exit_on_sigterm()
    n_tokens = -(-args.streams // args.per_token)
    with tempfile.TemporaryDirectory(prefix="synib-bench-streams-") as tmp:
        sqlite_dir = Path(tmp) if args.sqlite else None
        with bench_database(sqlite_dir) as url:
            seeded = seed(url, n_tokens, args.jobs)
            with api(url, Path(tmp) / "state") as (base, port, pid):
                rows, refused = measure(url, base, port, pid, seeded, args)
    print(
        markdown_table(
            [
                "window",
                "streams open",
                "GET /jobs",
                "p50 ms",
                "p99 ms",
                "max ms",
                "API RSS MB",
                "DB transactions/s (idle)",
            ],
            rows,
        )
    )
    if refused:
        print(f"refused streams by status: {refused}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
