"""The FastAPI application: ``create_app(settings)`` and the module-level ``app``.

Run with ``uvicorn api.main:app`` (or ``synib api``). Routes live under /api/v1; OpenAPI at
/openapi.json, interactive docs at /docs and /redoc when ``settings.api_docs``; the static
dashboard (settings.static_dir) is mounted at / last. Middleware, outermost first: metrics,
HTTP methods (HEAD, OPTIONS, 405), the body guard (token before body, caps, timeouts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool

from api.body_guard import BodyGuardMiddleware
from api.errors import install_error_handlers
from api.event_hub import EventHub, end_streams_on_exit
from api.http_methods import HttpMethodsMiddleware
from api.observability import ApiMetrics, MetricsMiddleware
from api.openapi_links import install_links
from api.ratelimit import SlidingWindowLimiter
from api.routes import (
    artifacts,
    datasets,
    events,
    health,
    jobs,
    knobs,
    me,
    metrics,
    models,
    reports,
    trials,
)
from api.static import DashboardFiles
from api.token_cache import TokenCache
from infra.broker import TaskProducer
from infra.db.session import (
    make_async_engine,
    make_async_session_factory,
    make_engine,
    make_session_factory,
)
from infra.object_store import open_store
from infra.process_lifetime import exit_with_multiprocessing_parent
from infra.settings import Settings, get_settings

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("synib")
    except PackageNotFoundError:
        return "0.0.0"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    routes = (
        health, me, knobs, models, datasets, jobs, trials, events, reports, artifacts, metrics,
    )  # fmt: skip
    for module in routes:
        router.include_router(module.router)
    return router


def _mount_dashboard(app: FastAPI, settings: Settings) -> None:
    if settings.static_dir.is_dir():
        app.mount("/", DashboardFiles(directory=settings.static_dir, html=True), name="dashboard")
        return

    docs = {"docs": "/docs"} if settings.api_docs else {}

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, str]:
        return {"name": "synib", **docs, "openapi": "/openapi.json", "api": API_PREFIX}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment). Creates no files and
    opens no connection until the first request."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    async_engine = make_async_engine(settings.database_url, pool_size=settings.db_pool_size)
    producer = TaskProducer(settings)
    hub = EventHub(
        make_session_factory(engine),
        max_per_token=settings.max_streams_per_token,
        max_per_process=settings.max_streams_per_process,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        end_streams_on_exit(hub)
        exit_with_multiprocessing_parent()  # a worker of `synib api --workers N` ends with it
        yield
        await hub.close()
        await run_in_threadpool(producer.close)
        await async_engine.dispose()
        engine.dispose()

    app = FastAPI(
        title="SynIB",
        summary="SynIB as a service: multimodal training that uses every modality.",
        version=_version(),
        openapi_url="/openapi.json",
        # Off by default: their pages load scripts from a CDN (docs/OPERATIONS.md).
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.async_engine = async_engine
    app.state.read_session_factory = make_async_session_factory(async_engine)
    app.state.token_cache = TokenCache(settings.auth_cache_ttl_s)
    app.state.store = open_store(settings)
    app.state.producer = producer
    app.state.limiter = SlidingWindowLimiter(settings.rate_limit_per_minute, 60.0)
    app.state.validation_gate = asyncio.Semaphore(1)  # uploads validated one at a time
    app.state.metrics = ApiMetrics()
    app.state.event_hub = hub
    app.state.sse_keepalive_s = 15.0
    install_error_handlers(app)
    install_links(app)
    app.include_router(api_router())
    # Liveness and readiness also at the root, where load balancers and probes look first.
    app.include_router(health.router, include_in_schema=False)
    _mount_dashboard(app, settings)
    app.add_middleware(BodyGuardMiddleware, settings=settings)
    app.add_middleware(HttpMethodsMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


app = create_app()
