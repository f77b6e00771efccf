"""Prometheus metrics: request count and latency by route template and status, job and queue
gauges filled at scrape time. One registry per app (tests build many apps)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db.models import JOB_STATUSES


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "synib_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "synib_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            registry=self.registry,
        )
        self.jobs = Gauge("synib_jobs", "Jobs by status", ["status"], registry=self.registry)
        self.queue_depth = Gauge(
            "synib_queue_depth", "Messages waiting in the synib queue", registry=self.registry
        )

    def render(self, jobs_by_status: dict[str, int], queue_depth: int | None) -> bytes:
        """The text exposition after refreshing the gauges (queue depth -1 when unknown)."""
        for status in JOB_STATUSES:
            self.jobs.labels(status=status).set(jobs_by_status.get(status, 0))
        self.queue_depth.set(-1 if queue_depth is None else queue_depth)
        return generate_latest(self.registry)


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
