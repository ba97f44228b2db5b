"""Assemble a service's FastAPI app: shared lifespan, error model, health and debug routes.

Every service's ``app.py`` calls :func:`create_service_app` with its own lifespan and readiness
checks; the shared start-up work (logging, sizing, the thread limiter, the loop-lag monitor)
happens here once, inside the lifespan, so that building the app does no I/O.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from panorama.core.errors import install_error_handlers
from panorama.core.health import Check, health_router
from panorama.core.logging import configure_logging
from panorama.core.looplag import LoopLagMonitor
from panorama.core.settings import PanoramaSettings

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

    @router.get("/plan")
    async def sizing_plan(request: Request) -> dict[str, Any]:
        """The sizing plan this worker runs with, and why."""
        return request.app.state.plan.as_dict()

    return router


def create_service_app(
    *,
    service: str,
    settings: PanoramaSettings,
    lifespan: Lifespan | None = None,
    readiness_checks: Callable[[FastAPI], Mapping[str, Check]] = lambda app: {},
    debug_routes: bool = True,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with Panorama's shared lifespan, errors, ``/healthz``, ``/readyz``, ``/debug``."""
    inner = lifespan or _no_lifespan

    @contextlib.asynccontextmanager
    async def shared_lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service, settings.log_level, json=settings.log_json)
        plan = settings.sizing()
        app.state.plan = plan
        # FastAPI runs `def` routes through AnyIO's limiter: 40 threads unless told otherwise.
        anyio.to_thread.current_default_thread_limiter().total_tokens = plan.thread_tokens
        monitor = LoopLagMonitor()
        app.state.loop_lag = monitor
        monitor.start()
        log.info("%s starting", service, extra={"plan": plan.as_dict()})
        try:
            async with inner(app):
                yield
        finally:
            await monitor.stop()
            log.info("%s stopped", service)

    app = FastAPI(title=f"Panorama {service}", lifespan=shared_lifespan, **fastapi_kwargs)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_router(lambda: readiness_checks(app), settings.readiness_timeout))
    if debug_routes:
        app.include_router(debug_router())
    return app
