"""The FastAPI application and `serve`: checks before binding, then API + scheduler + worker processes."""

from __future__ import annotations

import inspect
import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttsync import __version__
from ttsync.app import accounts, background
from ttsync.app.workspace.layout import Workspace
from ttsync.server import problems
from ttsync.server.auth import cookie_key
from ttsync.server.hot import HotReads
from ttsync.server.metrics import Metrics, use_metrics_dir
from ttsync.server.routers import admin, campaigns, objects, runs, session
from ttsync.server.scheduler import Scheduler
from ttsync.server.web import pages
from ttsync.server.workers import WorkerPool
from ttsync.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """Options of `ttsync serve`."""

    host: str = "127.0.0.1"
    port: int = 8700
    workers: int = 2
    http_workers: int = 1  # HTTP processes; the scheduler and the run workers stay in the one main process
    behind_proxy: bool = False
    insecure_public: bool = False
    timezone: str = "UTC"
    catch_up: str = "skip"
    tick_seconds: float = 10.0


class ServeRefusedError(Exception):
    """The server will not start (a non-loopback host without TLS in front, no admin user)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(config: ServerConfig) -> None:
    """Refuse a public bind without TLS in front, and unknown option values (before anything is opened)."""
    if not _is_loopback(config.host) and not (config.behind_proxy or config.insecure_public):
        raise ServeRefusedError(
            f"refusing to listen on {config.host}: passwords and session cookies would cross the network in "
            "clear text. Terminate TLS in a reverse proxy and pass --behind-proxy (see docs/server.md), or "
            "pass --insecure-public if you accept the risk"
        )
    if config.catch_up not in ("skip", "latest"):
        raise ServeRefusedError(f"--catch-up must be skip or latest, not {config.catch_up!r}")


def check_can_serve(store: Store, config: ServerConfig) -> None:
    """`check_options`, and refuse a store without an admin user."""
    check_options(config)
    if not accounts.has_admin(store):
        raise ServeRefusedError(
            "no admin user yet: add one first with `ttsync users add NAME --role admin` "
            "(it asks for the password; `--password-env VAR` reads it from a variable in scripts)"
        )


def create_app(
    workspace: Workspace, store: Store, config: ServerConfig, *, background_work: bool = True
) -> FastAPI:
    """The API over `store`; with `background_work`, also the scheduler and the worker processes."""
    scheduler = Scheduler(store, zone=config.timezone, tick=config.tick_seconds, catch_up=config.catch_up)
    pool = WorkerPool(workspace, config.workers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background_work:
            await run_in_threadpool(_reclaim, store)
            pool.start()
            scheduler.start()
        try:
            yield
        finally:
            if background_work:
                scheduler.stop()
                pool.stop()

    app = FastAPI(
        title="ttsync",
        version=__version__,
        description="The ttsync team server: configuration, runs, workflows, notifications, users and audit.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        **_NO_OTEL,
    )
    app.state.workspace = workspace
    app.state.store = store
    app.state.config = config
    app.state.cookie_key = cookie_key(store)
    app.state.scheduler = scheduler
    app.state.pool = pool
    metrics = Metrics(store)
    problems.install(app)
    for router in (session.router, objects.router, runs.router, campaigns.router, admin.router):
        app.include_router(router, responses=problems.RESPONSES)
    _register_problem_schema(app)
    app.include_router(pages.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """The web UI."""
        return RedirectResponse("/ui/", status_code=303)

    app.add_middleware(HotReads)  # inside _Measure: its answers are counted and get the same headers
    app.add_middleware(_Measure, metrics=metrics)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Response:
        """Readiness: the store answers and a scheduler leader is known."""
        try:
            leader = scheduler.leader_known()
        except Exception as exc:
            return problems.problem_response(
                503,
                "Not ready",
                f"the store does not answer ({type(exc).__name__})",
                resolution="store_unreachable",
            )
        # An HTTP worker process of `serve --http-workers N` has no scheduler of its own, but its server does.
        if (background_work or config.http_workers > 1) and not leader:
            return problems.problem_response(
                503, "Not ready", "no scheduler leader yet", resolution="scheduler_starting"
            )
        body = {"status": "ready", "scheduler_leader": scheduler.is_leader, "workers": pool.alive()}
        if not background_work:
            body["workers"] = None  # they belong to the main process
        return Response(json.dumps(body), media_type="application/json")

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


# FastAPI's OpenTelemetry hooks (in recent FastAPI) look up the global providers on every request, which costs
# the busiest endpoints a few percent; ttsync's server exports Prometheus metrics (`/metrics`) instead.
_NO_OTEL: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


class _Measure:
    """Pure ASGI middleware (cheaper than `BaseHTTPMiddleware` on every request): counts and times requests
    by route, and adds `nosniff` and `no-store` to every answer."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - began)


def _register_problem_schema(app: FastAPI) -> None:
    """Put `ProblemDocument` in the OpenAPI components (the routes' error responses refer to it)."""
    from fastapi.openapi.utils import get_openapi

    def schema() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {})
        components.setdefault("schemas", {})["ProblemDocument"] = problems.ProblemDocument.model_json_schema()
        app.openapi_schema = document
        return document

    setattr(app, "openapi", schema)  # noqa: B010 (FastAPI's documented way to customize the schema)


_SERVE_SPEC_ENV = "TTSYNC_SERVE_SPEC"  # how the main process tells its HTTP worker processes what to serve


def serve(workspace: Workspace, config: ServerConfig) -> None:
    """Check, then run the server until interrupted.

    With `http_workers` > 1, uvicorn starts that many HTTP processes (each serves the API and the pages, a
    request costs CPU in one of them, so two cores serve twice the requests); this process keeps the one
    scheduler and the run worker pool, so nothing runs twice."""
    import uvicorn

    check_options(config)
    store = workspace.open_store()
    try:
        check_can_serve(store, config)
        use_metrics_dir(workspace.state_dir, config.port)  # before any process or metric is made
        options: dict[str, Any] = {
            "host": config.host,
            "port": config.port,
            "log_level": "warning",
            "access_log": False,  # no access log (the level above hides it anyway): nothing per request
            "proxy_headers": config.behind_proxy,
            "forwarded_allow_ips": "127.0.0.1" if config.behind_proxy else None,
        }
        if config.http_workers <= 1:
            uvicorn.run(create_app(workspace, store, config), **options)
            return
        os.environ[_SERVE_SPEC_ENV] = json.dumps({"root": str(workspace.root), "config": asdict(config)})
        scheduler = Scheduler(store, zone=config.timezone, tick=config.tick_seconds, catch_up=config.catch_up)
        pool = WorkerPool(workspace, config.workers)
        _reclaim(store)
        pool.start()
        scheduler.start()
        try:
            uvicorn.run(f"{__name__}:http_worker_app", factory=True, workers=config.http_workers, **options)
        finally:
            scheduler.stop()
            pool.stop()
    finally:
        store.close()


def http_worker_app() -> FastAPI:
    """The app of one HTTP worker process of `serve` (uvicorn's factory): the API and pages only."""
    spec = json.loads(os.environ[_SERVE_SPEC_ENV])
    workspace = Workspace(Path(spec["root"]))
    store = workspace.open_store()
    return create_app(workspace, store, ServerConfig(**spec["config"]), background_work=False)


def _reclaim(store: Store) -> None:
    """Runs a previous server's workers held when it died are lost (retryable): say so once at start."""
    lost = background.reclaim_lost(store)
    if lost:
        log.warning(
            "%d run(s) of a previous server were lost with their worker; they are retryable", len(lost)
        )
