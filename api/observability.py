"""Prometheus metrics: request count and latency by route template and status, job and queue
gauges computed at scrape time. One registry per app (tests build many apps).

Several API processes (``synib api --workers N``) share their request metrics through
prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set before the processes
start, each writes its counts to its own file there, and a scrape, whichever process answers it,
sums them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.db.models import JOB_STATUSES

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class ApiMetrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
        # Multiprocess mode: the values live in files, summed at scrape time from all of them.
        self.registry = CollectorRegistry()
        own = None if self.multiprocess_dir else self.registry
        self.requests = Counter(
            "synib_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "synib_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            registry=own,
        )
        if self.multiprocess_dir:
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)

    def render(self, jobs_by_status: dict[str, int], queue_depth: int | None) -> bytes:
        """The text exposition: request metrics, then the gauges read now (queue depth -1 when
        unknown)."""
        gauges = CollectorRegistry()
        gauges.register(_Gauges(jobs_by_status, -1 if queue_depth is None else queue_depth))
        return generate_latest(self.registry) + generate_latest(gauges)


class _Gauges(Collector):
    """Jobs by status and the queue depth, as read for this scrape (the same in every process:
    they come from the database and the broker)."""

    def __init__(self, jobs_by_status: dict[str, int], queue_depth: int) -> None:
        self.jobs_by_status = jobs_by_status
        self.queue_depth = queue_depth

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("synib_jobs", "Jobs by status", labels=["status"])
        for status in JOB_STATUSES:
            jobs.add_metric([status], self.jobs_by_status.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "synib_queue_depth", "Messages waiting in the synib queue", value=self.queue_depth
        )


def _route_template(scope: Scope) -> str:
    """The matched route's full path template (``/api/v1/jobs/{job_id}``), bounded labels."""
    context: Any = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(context, "path", None)
    if path is None:
        path = getattr(scope.get("route"), "path", None)
    if path is None:
        return "unmatched"
    return path or "/static"


class MetricsMiddleware:
    """Pure ASGI middleware (works with streaming responses) recording each HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(route, method, str(status["code"])).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)
