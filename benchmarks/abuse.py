"""What one unauthenticated client, or one user, can take from everyone else (issue #21).

    python benchmarks/abuse.py [--smoke] [--streams 500] [--json-mb 95] [--upload-mb 500]

Starts ``synib api`` (one uvicorn process, as ``synib serve`` runs it) on a throwaway PostgreSQL
database and the embedded broker, with two users: an attacker and a victim. No worker runs, so
the attacker's job stays queued and its event stream never ends by itself. Phases:

- ``baseline``: nothing but the victim;
- ``json-no-token``: a JSON body of ``--json-mb`` MB without a token, sent to POST /api/v1/jobs;
- ``upload-no-token``: an octet-stream body of ``--upload-mb`` MB without a token, sent to the
  upload route;
- ``json-with-token``: the same large JSON body with the attacker's valid token;
- ``streams``: the attacker opens ``--streams`` event streams on its job at once and keeps them.

During every phase the victim loops ``GET /api/v1/jobs`` and ``GET /health`` on its own
connections; the table shows the victim's p50/p99, the slowest /health, the API's peak RSS
(sampled every 20 ms from /proc) and what the attacker got back (status codes).
The targets of issue #21 are printed beside the numbers, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from multiprocessing import synchronize as mp_sync
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _seed import job_spec, make_user, ready_dataset
from _service import (
    bench_database,
    exit_on_sigterm,
    markdown_table,
    percentile,
    run_api,
)

from infra.db import crud
from infra.db.session import make_engine

RSS_TARGET_MB = 300.0
P99_TARGET_MS = 200.0
CHUNK = 1024 * 1024


def _tree_pids(root: int) -> list[int]:
    """``root`` and its descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


class RssSampler:
    """Peak RSS (MiB) of a process tree, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb(_tree_pids(self.pid)))
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Phase:
    name: str
    victim_ms: list[float] = field(default_factory=list)
    victim_errors: int = 0
    health_ms: list[float] = field(default_factory=list)
    attacker: Counter[str] = field(default_factory=Counter)
    peak_rss_mb: float = 0.0
    seconds: float = 0.0


async def _victim(url: str, token: str, phase: Phase, stop: mp_sync.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                r = await client.get("/api/v1/jobs", params={"limit": 20})
                if r.status_code != 200:
                    phase.victim_errors += 1
            except httpx.HTTPError:
                phase.victim_errors += 1
            phase.victim_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.02)


async def _health(url: str, phase: Phase, stop: mp_sync.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/health")
            phase.health_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.1)


def _victim_process(url: str, token: str, stop: mp_sync.Event, results: Any) -> None:
    """The victim in a process of its own (as another user on another machine): its latency
    does not include the attacker's client work."""
    phase = Phase("victim")

    async def both() -> None:
        await asyncio.gather(_victim(url, token, phase, stop), _health(url, phase, stop))

    asyncio.run(both())
    results.put((phase.victim_ms, phase.victim_errors, phase.health_ms))


async def _big_body(size_mb: int, opening: bytes) -> AsyncIterator[bytes]:
    """``size_mb`` MiB: ``opening`` then filler, in 1 MiB chunks (never held whole)."""
    yield opening
    filler = b" " * CHUNK
    for _ in range(size_mb):
        yield filler
    yield b"}"


async def _send_body(url: str, path: str, size_mb: int, token: str | None, kind: str) -> str:
    headers = {"Content-Type": kind}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    opening = b'{"dataset_id": "x", "pad": "' if kind == "application/json" else b"\0"
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        try:
            r = await client.post(path, content=_big_body(size_mb, opening), headers=headers)
            return str(r.status_code)
        except httpx.HTTPError as exc:
            return f"closed ({type(exc).__name__})"


async def _open_stream(
    client: httpx.AsyncClient, job_id: str, phase: Phase, opened: asyncio.Event
) -> None:
    try:
        async with client.stream("GET", f"/api/v1/jobs/{job_id}/events") as r:
            phase.attacker[str(r.status_code)] += 1
            if r.status_code != 200:
                return
            async for _ in r.aiter_raw():
                await opened.wait()
                return
    except httpx.HTTPError as exc:
        phase.attacker[f"closed ({type(exc).__name__})"] += 1


async def _streams(url: str, token: str, job_id: str, n: int, hold_s: float, phase: Phase) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    done = asyncio.Event()
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=None, limits=limits
    ) as client:
        tasks = [asyncio.create_task(_open_stream(client, job_id, phase, done)) for _ in range(n)]
        await asyncio.sleep(hold_s)
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_phase(
    phase: Phase, url: str, victim_token: str, attack: Any | None, min_s: float
) -> None:
    ctx = multiprocessing.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    victim = ctx.Process(target=_victim_process, args=(url, victim_token, stop, results))
    victim.start()
    await asyncio.sleep(1.0)  # the victim's interpreter is up and sending
    t0 = time.perf_counter()
    if attack is not None:
        await attack
    remaining = min_s - (time.perf_counter() - t0)
    if remaining > 0:
        await asyncio.sleep(remaining)
    phase.seconds = time.perf_counter() - t0
    stop.set()
    phase.victim_ms, phase.victim_errors, phase.health_ms = await asyncio.to_thread(
        results.get, True, 60
    )
    victim.join(timeout=30)


@contextlib.contextmanager
def _service(workdir: Path) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(API URL, API pid, {attacker_token, victim_token, job_id})."""
    with bench_database() as database_url:
        engine = make_engine(database_url)
        with Session(engine) as session:
            attacker, attacker_id = make_user(session, "attacker")
            victim, victim_id = make_user(session, "victim")
            dataset_id = ready_dataset(session, attacker_id)
            ready_dataset(session, victim_id)
            job = crud.create_job(
                session,
                owner_id=attacker_id,
                dataset_id=dataset_id,
                name="never ends",
                spec=job_spec(dataset_id),
                trials_total=8,
                task_id="none",
            )
            ids = {"attacker": attacker, "victim": victim, "job_id": job.id}
        engine.dispose()
        with run_api(database_url, workdir) as url:
            pid = _api_pid(workdir)
            yield url, pid, ids


def _api_pid(workdir: Path) -> int:
    """The ``synib api`` process (the one whose command line names this state folder's port)."""
    mine = os.getpid()
    for pid in _tree_pids(mine):
        if pid == mine:
            continue
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"api" in cmd and b"worker.cli" in cmd:
                return pid
    raise RuntimeError("synib api process not found")


async def _measure(
    args: argparse.Namespace, url: str, pid: int, ids: dict[str, str]
) -> list[Phase]:
    victim, attacker = ids["victim"], ids["attacker"]
    quiet_s = 1.5 if args.smoke else 10.0
    attacks = {
        "baseline": None,
        "json-no-token": lambda: _send_body(
            url, "/api/v1/jobs", args.json_mb, None, "application/json"
        ),
        "upload-no-token": lambda: _send_body(
            url, "/api/v1/datasets", args.upload_mb, None, "application/octet-stream"
        ),
        "json-with-token": lambda: _send_body(
            url, "/api/v1/jobs", args.json_mb, attacker, "application/json"
        ),
    }
    phases = []
    for name, make in attacks.items():
        phase = Phase(name)
        with RssSampler(pid) as sampler:

            async def attack(make=make, phase=phase) -> None:
                if make is not None:
                    phase.attacker[await make()] += 1

            await _run_phase(phase, url, victim, attack(), quiet_s)
        phase.peak_rss_mb = sampler.peak
        phases.append(phase)
    phase = Phase(f"{args.streams}-streams")
    with RssSampler(pid) as sampler:
        hold = quiet_s * 2
        await _run_phase(
            phase, url, victim, _streams(url, attacker, ids["job_id"], args.streams, hold, phase), 0
        )
    phase.peak_rss_mb = sampler.peak
    phases.append(phase)
    return phases


def _table(phases: list[Phase]) -> str:
    rows = []
    for p in phases:
        p99 = percentile(p.victim_ms, 99)
        rows.append(
            [
                p.name,
                ", ".join(f"{k} x{v}" for k, v in sorted(p.attacker.items())) or "-",
                f"{p.peak_rss_mb:.0f} ({'met' if p.peak_rss_mb < RSS_TARGET_MB else 'MISSED'})",
                f"{percentile(p.victim_ms, 50):.1f}",
                f"{p99:.1f} ({'met' if p99 < P99_TARGET_MS else 'MISSED'})",
                len(p.victim_ms),
                p.victim_errors,
                f"{max(p.health_ms, default=float('nan')):.0f}",
            ]
        )
    headers = [
        "phase",
        "attacker got",
        f"API peak RSS MiB (< {RSS_TARGET_MB:g})",
        "victim p50 ms",
        f"victim p99 ms (< {P99_TARGET_MS:g})",
        "victim requests",
        "victim errors",
        "slowest /health ms",
    ]
    return markdown_table(headers, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--json-mb", type=int, default=95)
    parser.add_argument("--upload-mb", type=int, default=500)
    args = parser.parse_args()
    if args.smoke:
        args.streams, args.json_mb, args.upload_mb = 20, 3, 5
    exit_on_sigterm()
    with (
        tempfile.TemporaryDirectory(prefix="synib-abuse-") as tmp,
        _service(Path(tmp)) as (
            url,
            pid,
            ids,
        ),
    ):
        phases = asyncio.run(_measure(args, url, pid, ids))
    print(_table(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
