"""Assemble a service's FastAPI app: shared lifespan, error model, health and debug routes.

Every service's ``app.py`` calls :func:`create_service_app` with its own lifespan and readiness
checks; the shared start-up work (logging, telemetry, sizing, the thread limiter, the loop-lag
monitor, the blocking detector, the metrics sampler) happens here once, inside the lifespan, so
that building the app does no I/O. Building it only reads the environment to decide whether to
add the tracing middleware (:func:`panorama.core.telemetry.telemetry_enabled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from panorama.core.blocking import BlockingDetector, InFlightMiddleware, InFlightRequests
from panorama.core.errors import install_error_handlers
from panorama.core.health import Check, health_router
from panorama.core.internal import InternalTokenMiddleware
from panorama.core.logging import configure_logging
from panorama.core.looplag import LoopLagMonitor
from panorama.core.metrics import MetricsSampler, RequestMetricsMiddleware, metrics_router
from panorama.core.settings import PanoramaSettings
from panorama.core.telemetry import flush_telemetry, instrument_fastapi, setup_telemetry, tracer_provider

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]
log = logging.getLogger(__name__)


class LoopReport(BaseModel):
    current_s: float
    max_s: float
    p99_s: float
    samples: int
    thread_tokens: float
    threads_borrowed: int


@contextlib.asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def _drain_checks() -> dict[str, Check]:
    """Not ready once gunicorn's SIGTERM drain began (the config module is loaded only under gunicorn)."""
    conf = sys.modules.get("panorama.core.gunicorn_conf")
    if conf is None or not conf.draining():
        return {}

    async def shutting_down() -> None:
        raise RuntimeError("draining before shutdown")

    return {"shutdown": shutting_down}


def debug_router() -> APIRouter:
    router = APIRouter(prefix="/debug", tags=["debug"])

    @router.get("/loop")
    async def loop(request: Request) -> LoopReport:
        """Event-loop lag (current, max, p99 over the window) and thread-limiter use."""
        limiter = anyio.to_thread.current_default_thread_limiter()
        stats = request.app.state.loop_lag.stats()
        return LoopReport(
            **stats.as_dict(), thread_tokens=limiter.total_tokens, threads_borrowed=limiter.borrowed_tokens
        )

    @router.get("/blocking")
    async def blocking(request: Request) -> list[dict[str, Any]]:
        """This worker's latest blocking-detector reports (route, line, stack, trace id)."""
        detector = getattr(request.app.state, "blocking", None)
        return [report.as_dict() for report in detector.reports] if detector is not None else []

    @router.get("/plan")
    async def sizing_plan(request: Request) -> dict[str, Any]:
        """The sizing plan this worker runs with, and why."""
        return request.app.state.plan.as_dict()

    return router


@contextlib.asynccontextmanager
async def _logged_and_traced(service: str, settings: PanoramaSettings) -> AsyncIterator[None]:
    """Logging and telemetry first in, last out: everything after them is logged and traced."""
    configure_logging(service, settings.log_level, json=settings.log_json, access_log=settings.access_log)
    # Already done in gunicorn's post_fork; this covers `uvicorn app:...` and tests (idempotent).
    setup_telemetry(service, settings)
    if settings.asyncio_debug:
        # The seed's development aid: asyncio logs every callback slower than this (to the
        # same JSON stream, through the "asyncio" logger); costly, so off by default.
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = settings.slow_callback_ms / 1000
    try:
        yield
    finally:
        log.info("%s stopped", service)
        if tracer_provider() is not None:
            # Bounded; the full shutdown happens at process exit (gunicorn worker_exit, atexit).
            await asyncio.to_thread(flush_telemetry, 2.0)


@contextlib.asynccontextmanager
async def _sized(app: FastAPI, settings: PanoramaSettings) -> AsyncIterator[None]:
    """The sizing plan, and the thread limiter sized by it."""
    app.state.plan = settings.sizing()
    # FastAPI runs `def` routes through AnyIO's limiter: 40 threads unless told otherwise.
    anyio.to_thread.current_default_thread_limiter().total_tokens = app.state.plan.thread_tokens
    yield


@contextlib.asynccontextmanager
async def _loop_lag(app: FastAPI) -> AsyncIterator[None]:
    async with LoopLagMonitor() as monitor:
        app.state.loop_lag = monitor
        yield


@contextlib.asynccontextmanager
async def _blocking_detector(app: FastAPI, settings: PanoramaSettings) -> AsyncIterator[None]:
    """The blocking detector's thread, unless ``blocking_threshold_ms`` is 0."""
    app.state.blocking = None
    if settings.blocking_threshold_ms <= 0:
        yield
        return
    detector = BlockingDetector(threshold=settings.blocking_threshold_ms / 1000, requests=app.state.in_flight)
    detector.start()
    app.state.blocking = detector
    try:
        yield
    finally:
        detector.stop()


@contextlib.asynccontextmanager
async def _metrics_sampler(app: FastAPI) -> AsyncIterator[None]:
    async with MetricsSampler(app):
        yield


@contextlib.asynccontextmanager
async def _collector(settings: PanoramaSettings) -> AsyncIterator[None]:
    """Once the service has started: its heap (modules, the app, pools) frozen out of the garbage
    collector, and the youngest generation collected every ``gc_threshold`` allocations.

    Measured reason (docs/observability.md, "What it costs"): with Python's defaults (700, 10, 10), objects that live
    for a request or a little longer (a recorded span waits in the exporter's queue for its batch)
    are swept through every generation, and each full collection walks the whole start-up heap
    again; on a traced worker that was a fifth of its CPU per request. ``gc.freeze`` also keeps the
    frozen pages shared with the gunicorn master (no copy-on-write from the collector's marks)."""
    if settings.gc_threshold:
        gc.collect()
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(settings.gc_threshold, older, oldest)
    yield


def _lifespan(service: str, settings: PanoramaSettings, inner: Lifespan) -> Lifespan:
    """The shared lifespan: each piece starts in order and stops in reverse, then the service's own."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            _logged_and_traced(service, settings),
            _sized(app, settings),
            _loop_lag(app),
            _blocking_detector(app, settings),
            _metrics_sampler(app),
        ):
            log.info("%s starting", service, extra={"plan": app.state.plan.as_dict()})
            async with inner(app), _collector(settings):
                yield

    return lifespan


def create_service_app(
    *,
    service: str,
    settings: PanoramaSettings,
    lifespan: Lifespan | None = None,
    readiness_checks: Callable[[FastAPI], Mapping[str, Check]] = lambda app: {},
    debug_routes: bool = True,
    public: bool = False,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with Panorama's shared lifespan, errors, ``/healthz``, ``/readyz``, ``/debug``.

    ``debug_routes`` adds ``/debug/*`` (a separate switch). ``public`` says who calls the app:
    clients (the gateway): ``/readyz`` says ready or not without the reasons, ``/metrics`` is not
    served on the app's port (the gunicorn master serves it on ``PANORAMA_METRICS_PORT``), and no
    internal token is asked, since clients never hold it; otherwise (a service behind the gateway)
    calls without the internal token are refused when ``PANORAMA_INTERNAL_TOKEN`` is set.
    """
    # FastAPI's own OpenTelemetry (0.165+) stays off: panorama.core.telemetry's server span behind the
    # sampling gate makes the spans, and the native wrapper cost every request something even when it yielded.
    fastapi_kwargs.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
    app = FastAPI(
        title=f"Panorama {service}", lifespan=_lifespan(service, settings, lifespan or _no_lifespan), **fastapi_kwargs
    )
    app.state.settings = settings
    app.state.in_flight = InFlightRequests()
    app.state.metric_samplers = []
    install_error_handlers(app)
    app.include_router(
        health_router(
            lambda: {**readiness_checks(app), **_drain_checks()}, settings.readiness_timeout, details=not public
        )
    )
    if not public:
        app.include_router(metrics_router())
    if debug_routes:
        app.include_router(debug_router())
    # add_middleware puts each new one outside the last: metrics time the whole request, and the
    # in-flight record sits innermost, in the task that runs the route. Middleware a service adds
    # later wraps both (a BaseHTTPMiddleware then still leaves the route in the recorded task).
    app.add_middleware(InFlightMiddleware, requests=app.state.in_flight)
    app.add_middleware(RequestMetricsMiddleware)
    if not public and settings.internal_token is not None:
        # Callers must come through the gateway (probes and /metrics stay open).
        app.add_middleware(InternalTokenMiddleware, token=settings.internal_token.get_secret_value())
    # Outermost of all (the gate and the server span wrap the whole stack), only when spans are exported.
    instrument_fastapi(app)
    return app
