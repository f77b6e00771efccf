"""Latency of the REST API under uvicorn, against a throwaway PostgreSQL database (or SQLite).

    python benchmarks/api_latency.py [--seconds 10] [--clients 20 [N ...]] [--rate 2 0] [--jobs 10000]
        [--trials 50] [--epochs 100] [--repeats 30] [--workers 1] [--sqlite] [--smoke]
        [--broker-url URL] [--client raw|httpx]

(a) ``--clients`` concurrent clients (asyncio, one keep-alive connection each, built and
connected before the clock starts; ``--client raw``, the default, writes HTTP/1.1 itself
(benchmarks/_rawhttp.py) and costs the shared cores a fraction of what httpx does) for
``--seconds``: each loops ``POST /api/v1/jobs`` (a valid 8-trial spec on a seeded ready dataset;
no worker runs, the messages are deleted at the end) then ``GET /api/v1/jobs/{id}``, once per ``--rate``: a client paces its POST+GET pairs at
that rate (2/s: 20 clients send 80 requests/s), or with 0 sends the next request as soon as the
last one answered (closed loop: the server's saturation, where latency is queueing time).
Next to the client's percentiles: the share of the requests the API's own latency histogram
(``GET /metrics``, read before and after) timed within 100 ms.
(b) ``--jobs`` seeded jobs listed page by page (default page size, max page size, a status
filter), one client. (c) one job with ``--trials`` x ``--epochs`` epoch rows x 10 metrics:
``GET /jobs/{id}/metrics``, ``/trials``, ``/trials.csv``, ``--repeats`` times each.

The database is ``synib_bench_<random>`` on postgresql://postgres@127.0.0.1:5432 (migrated with
Alembic, dropped at the end); ``--sqlite`` uses the embedded backend in a temp dir. Targets from
the issue are printed next to the numbers, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from _rawhttp import RawClient, RawHTTPError
from _seed import analyze, job_spec, make_user, ready_dataset, seed_jobs, seed_metrics_job
from _service import (
    bench_database,
    exit_on_sigterm,
    markdown_table,
    percentile,
    run_api,
    verdict,
)

from infra.db.session import make_engine, make_session_factory

TARGET_A_MS = 100.0  # the target: p99 < 100 ms at 20 paced clients x 2/s
TARGET_BC_MS = 150.0
Samples = dict[str, list[float]]


# ---- (a) concurrent create + read -------------------------------------------------------


async def _client_loop(
    c: LoadClient, body: dict[str, Any], deadline: float, lat: Samples, errors: Samples,
    rate: float = 0.0,
) -> None:  # fmt: skip
    """POST a job then GET it, again and again; ``rate`` > 0 paces the pairs (pairs per second,
    on a fixed schedule, so a slow answer is not followed by a pause); 0 = closed loop."""
    next_start = time.perf_counter()
    if rate > 0:  # spread the clients' schedules over one period instead of 20-request bursts
        next_start += random.uniform(0.0, 1.0 / rate)
        await asyncio.sleep(max(0.0, next_start - time.perf_counter()))
    while time.perf_counter() < deadline:
        job_id = await _timed(c, "POST /jobs", lat, errors, 202, "POST", "/jobs", body)
        if job_id is not None:
            await _timed(c, "GET /jobs/{id}", lat, errors, 200, "GET", f"/jobs/{job_id}")
        if rate > 0:
            next_start += 1.0 / rate
            await asyncio.sleep(max(0.0, next_start - time.perf_counter()))


async def _timed(
    client: LoadClient, name: str, lat: Samples, errors: Samples, expect: int,
    method: str, path: str, body: Any = None,
) -> str | None:  # fmt: skip
    """One request; its latency in ms goes to ``lat[name]``; the job id of a good answer."""
    t0 = time.perf_counter()
    try:
        response = await client.request(method, path, body)
    except (httpx.HTTPError, RawHTTPError):
        errors[name].append(1.0)
        return None
    lat[name].append(1000 * (time.perf_counter() - t0))
    if response.status_code != expect:
        errors[name].append(1.0)
        return None
    return str(response.json()["id"])


class _HttpxClient:
    """httpx behind the interface of ``RawClient.request`` (``--client httpx``)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def request(self, method: str, path: str, json_body: Any = None) -> Any:
        return await self.client.request(method, path, json=json_body)


LoadClient = RawClient | _HttpxClient


async def _load(
    base: str, token: str, body: dict[str, Any], clients: int, seconds: float, rate: float = 0.0,
    kind: str = "raw",
) -> tuple[Samples, Samples, float]:  # fmt: skip
    """``clients`` keep-alive clients, built and connected (one untimed ``GET /me`` each)
    before the clock starts: building an httpx client costs tens of ms of CPU (its TLS
    context), which would otherwise stall the clients already measuring."""
    lat: Samples = defaultdict(list)
    errors: Samples = defaultdict(list)
    headers = {"Authorization": f"Bearer {token}"}
    async with contextlib.AsyncExitStack() as stack:
        pool: list[LoadClient] = []
        for _ in range(clients):
            if kind == "raw":
                pool.append(await stack.enter_async_context(RawClient(f"{base}/api/v1", headers)))
            else:
                client = httpx.AsyncClient(base_url=f"{base}/api/v1", headers=headers, timeout=30)
                pool.append(_HttpxClient(await stack.enter_async_context(client)))
        for c in pool:
            answer = await c.request("GET", "/me")
            if answer.status_code != 200:
                raise RuntimeError(f"GET /me answered {answer.status_code}")
        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(_client_loop(c, body, deadline, lat, errors, rate) for c in pool))
        return lat, errors, time.perf_counter() - t0


# The API's own latency histogram (GET /metrics): (method, route template) per load endpoint.
SERVER_ROUTES = {"POST /jobs": ("POST", "/api/v1/jobs"), "GET /jobs/{id}": ("GET", "/api/v1/jobs/{job_id}")}  # fmt: skip
HISTOGRAM = "synib_http_request_duration_seconds"


def server_histogram(base: str, token: str) -> dict[tuple[str, str], dict[str, float]]:
    """``{(method, route): {le: cumulative count}}`` of the API's latency histogram now."""
    text = httpx.get(f"{base}/api/v1/metrics", headers={"Authorization": f"Bearer {token}"}).text
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    # Labels may hold braces (route="/api/v1/jobs/{job_id}"): the value is the line's last field.
    pattern = "^" + HISTOGRAM + r"_bucket\{(?P<labels>.*)\} (?P<value>\S+)$"
    for m in re.finditer(pattern, text, re.MULTILINE):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        out[(labels["method"], labels["route"])][labels["le"]] = float(m.group("value"))
    return out


def server_share_within(
    before: dict[tuple[str, str], dict[str, float]],
    after: dict[tuple[str, str], dict[str, float]],
    key: tuple[str, str],
    le: str = "0.1",
) -> float:
    """Share of the requests between the two snapshots that the server answered within
    ``le`` seconds (its middleware's time: from the request reaching the app to the answer)."""
    total = after[key].get("+Inf", 0.0) - before.get(key, {}).get("+Inf", 0.0)
    within = after[key].get(le, 0.0) - before.get(key, {}).get(le, 0.0)
    return within / total if total else float("nan")


def concurrent_table(
    base: str, token: str, dataset_id: str, clients: int, seconds: float, rate: float = 0.0,
    kind: str = "raw",
) -> str:  # fmt: skip
    body = job_spec(dataset_id)
    # Warm-up, not reported: as many connections as the run, so that every API process (the
    # kernel spreads connections over them) has served requests before the clock starts.
    asyncio.run(_load(base, token, body, clients, min(1.0, seconds), kind=kind))
    before = server_histogram(base, token)
    lat, errors, wall = asyncio.run(_load(base, token, body, clients, seconds, rate, kind))
    after = server_histogram(base, token)
    rows = []
    for name in ("POST /jobs", "GET /jobs/{id}"):
        values = lat[name]
        p99 = percentile(values, 99)
        share = server_share_within(before, after, SERVER_ROUTES[name])
        rows.append(
            [name, len(values), f"{len(values) / wall:.0f}", percentile(values, 50),
             percentile(values, 95), p99, f"{100 * share:.1f}%", len(errors[name]),
             verdict(p99, TARGET_A_MS)]
        )  # fmt: skip
    total = sum(len(v) for v in lat.values())
    pacing = f", each pacing {rate:g} POST+GET pairs/s" if rate > 0 else ", closed loop"
    head = (
        f"### (a) {clients} concurrent {kind} clients{pacing}, {wall:.1f} s "
        f"({total / wall:.0f} req/s)\n\n"
    )
    headers = ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
               "server <= 100 ms", "errors", "target (p99)"]  # fmt: skip
    note = (
        "\n\nserver <= 100 ms: share of the requests the API's own histogram (`/metrics`) "
        "timed within 100 ms, from the request reaching the app to the answer (>= 99% means a "
        "server-side p99 under 100 ms); p50/p95/p99 are the client's, request sent -> body read."
    )
    return head + markdown_table(headers, rows) + note


# ---- (b) paging through a long job list ---------------------------------------------------


def _page_through(client: httpx.Client, params: dict[str, Any]) -> tuple[list[float], float, int]:
    """Per-page latencies (ms), total seconds and rows seen, following offset to the end."""
    latencies: list[float] = []
    offset, seen, count = 0, 0, None
    t0 = time.perf_counter()
    while count is None or offset < count:
        query = {**params, "offset": offset} if offset else dict(params)
        t1 = time.perf_counter()
        response = client.get("/jobs", params=query)
        latencies.append(1000 * (time.perf_counter() - t1))
        response.raise_for_status()
        page = response.json()
        count = int(page["count"])
        if not page["data"]:
            break
        seen += len(page["data"])
        offset += len(page["data"])
    return latencies, time.perf_counter() - t0, seen


def listing_table(base: str, token: str, n_jobs: int) -> str:
    variants: list[tuple[str, dict[str, Any]]] = [
        ("default page size (50)", {}),
        ("max page size (200)", {"limit": 200}),
        ("status=succeeded, default size", {"status": "succeeded"}),
    ]
    headers = {"Authorization": f"Bearer {token}"}
    rows = []
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as client:
        client.get("/jobs")  # warm-up
        for label, params in variants:
            lat, total, seen = _page_through(client, params)
            p99 = percentile(lat, 99)
            rows.append(
                [label, len(lat), seen, lat[0], lat[-1], percentile(lat, 50), p99,
                 f"{total:.2f}", verdict(p99, TARGET_BC_MS)]
            )  # fmt: skip
    head = f"### (b) listing {n_jobs} jobs page by page (one client)\n\n"
    cols = ["listing", "pages", "jobs", "first page ms", "last page ms", "p50 ms", "p99 ms"]
    return head + markdown_table([*cols, "total s", "target"], rows)


# ---- (c) one job's metrics ----------------------------------------------------------------


def metrics_table(base: str, token: str, job_id: str, repeats: int, shape: str) -> str:
    paths = [f"/jobs/{job_id}/metrics", f"/jobs/{job_id}/trials", f"/jobs/{job_id}/trials.csv"]
    headers = {"Authorization": f"Bearer {token}"}
    rows = []
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60) as client:
        for path in paths:
            client.get(path).raise_for_status()  # warm-up
            lat, size = [], 0
            for _ in range(repeats):
                t0 = time.perf_counter()
                response = client.get(path)
                lat.append(1000 * (time.perf_counter() - t0))
                response.raise_for_status()
                size = len(response.content)
            p99 = percentile(lat, 99)
            name = "GET /jobs/{id}" + path.rsplit(job_id, 1)[1]
            rows.append(
                [name, repeats, f"{size / 1024:.0f}", percentile(lat, 50), p99,
                 verdict(p99, TARGET_BC_MS)]
            )  # fmt: skip
    head = f"### (c) one job's results: {shape}\n\n"
    cols = ["endpoint", "requests", "body KiB", "p50 ms", "p99 ms", "target"]
    return head + markdown_table(cols, rows)


# ---- driver ---------------------------------------------------------------------------------


def seed_all(url: str, args: argparse.Namespace) -> dict[str, str]:
    """Three users (load, list, metrics) so each part sees exactly its own rows."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            out: dict[str, str] = {}
            for part in ("load", "list", "metrics"):
                token, user_id = make_user(session, f"bench-{part}")
                out[f"{part}_token"] = token
                out[f"{part}_dataset"] = ready_dataset(session, user_id)
                out[f"{part}_user"] = user_id
            t0 = time.perf_counter()
            seed_jobs(session, owner_id=out["list_user"], dataset_id=out["list_dataset"],
                      n=args.jobs)  # fmt: skip
            out["metrics_job"] = seed_metrics_job(
                session, owner_id=out["metrics_user"], dataset_id=out["metrics_dataset"],
                trials=args.trials, epochs=args.epochs,
            )  # fmt: skip
            analyze(engine)
            print(f"seeded rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            return out
    finally:
        engine.dispose()


BENCH_REDIS = "redis://127.0.0.1:6379/15"


@contextlib.contextmanager
def _emptied_afterwards(broker_url: str, state_dir: Path) -> Iterator[None]:
    """Empty the ``synib`` queue after the run (no worker consumes it), through kombu."""
    try:
        yield
    finally:
        from kombu import Connection

        from infra.broker import QUEUE, transport_options
        from infra.settings import Settings

        settings = Settings(state_dir=state_dir, broker_url=broker_url)
        with Connection(settings.broker_url, transport_options=transport_options(settings)) as c:
            c.SimpleQueue(QUEUE).clear()


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="synib_bench_") as tmp:
        state = Path(tmp)
        with bench_database(state if args.sqlite else None) as url:
            seeds = seed_all(url, args)
            # "": the embedded broker (a SQLite file in the API's state folder).
            broker = args.broker_url or ("" if args.sqlite else BENCH_REDIS)
            with (
                run_api(url, state / "api", workers=args.workers, broker_url=broker) as base,
                _emptied_afterwards(broker, state / "api"),
            ):
                backend = "SQLite (WAL)" if args.sqlite else "PostgreSQL"
                broker_name = broker.split("://")[0] or "embedded (SQLite)"
                load = os.getloadavg()[0]
                emit(
                    f"## API latency: {backend}, {broker_name} broker, "
                    f"uvicorn x{args.workers} worker(s), "
                    f"{os.cpu_count()} CPUs, load average {load:.1f} at start\n"
                )
                for clients in args.clients:
                    for rate in args.rate:
                        emit(concurrent_table(base, seeds["load_token"], seeds["load_dataset"],
                                              clients, args.seconds, rate, args.client) + "\n")  # fmt: skip
                emit(listing_table(base, seeds["list_token"], args.jobs) + "\n")
                shape = f"{args.trials} trials x {args.epochs} epochs x 10 metrics"
                emit(metrics_table(base, seeds["metrics_token"], seeds["metrics_job"],
                                   args.repeats, shape) + "\n")  # fmt: skip
                emit(
                    "Latencies are measured by the client (request sent -> body read) on the "
                    "same machine as the server; the client's own CPU use is included."
                )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of part (a)")
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[20],
        help="concurrent clients of (a); several values: one table per value and rate",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator for (a): raw asyncio HTTP/1.1 (cheap) or httpx (about 1.5 ms of CPU "
        "per request, taken from the 2 cores the server runs on)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[2.0, 0.0],
        help="part (a), one table per value: POST+GET pairs per second per client "
        "(0 = closed loop: no think time, the server's saturation); default: 2 then 0",
    )
    parser.add_argument(
        "--broker-url",
        default=None,
        help="broker of the API (default: Redis database 15 on 127.0.0.1 with PostgreSQL, "
        "as in full mode, emptied afterwards; the embedded SQLite broker with --sqlite)",
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs seeded for part (b)")
    parser.add_argument("--trials", type=int, default=50, help="part (c)")
    parser.add_argument("--epochs", type=int, default=100, help="part (c)")
    parser.add_argument("--repeats", type=int, default=30, help="requests per endpoint in (c)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--sqlite", action="store_true", help="embedded SQLite backend")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.clients, args.jobs = 1.0, [4], 120
        args.trials, args.epochs, args.repeats = 3, 5, 3
    return args


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    run(parse_args(argv), lambda text: print(text, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
