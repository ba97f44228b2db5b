"""The gateway app: ``gunicorn ... 'panorama.gateway.app:create_app()'``."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import kombu
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Request

from panorama.core.bodylimit import BodyLimitMiddleware
from panorama.core.health import Check
from panorama.core.internal import INTERNAL_TOKEN_HEADER
from panorama.core.metrics import add_sampler, record_upstream_pool
from panorama.core.service import create_service_app
from panorama.core.telemetry import instrument_celery, instrument_redis
from panorama.gateway.auth import document_security, require_api_key
from panorama.gateway.ratelimit import RateLimiter
from panorama.gateway.routes import cached, compute, demo, proxy, safe, users, videos
from panorama.gateway.security import SecurityHeadersMiddleware
from panorama.gateway.settings import GatewaySettings
from panorama.gateway.upstream import Upstream

PUBLIC_ROUTERS = (users.router, cached.router, proxy.router, demo.router, safe.router, compute.router, videos.router)


def _checks(app: FastAPI) -> Mapping[str, Check]:
    async def reachable(upstream: Upstream) -> None:
        response = await upstream.request("GET", "/healthz", timeout=app.state.settings.readiness_timeout)
        if response.status != 200:
            raise RuntimeError(f"{upstream.name} /healthz answered {response.status}")

    checks: dict[str, Check] = {"io": lambda: reachable(app.state.io), "compute": lambda: reachable(app.state.compute)}
    settings = app.state.settings
    if settings.redis_url:
        checks["redis"] = lambda: redis_ping(settings.redis_url, settings.readiness_timeout)
    if settings.broker_url:
        checks["broker"] = lambda: broker_reachable(settings.broker_url, settings.readiness_timeout)
    checks["storage"] = lambda: storage_writable(settings.storage_dir)
    return checks


async def redis_ping(url: str, timeout: float) -> None:
    """The broker and result backend answer. A fresh connection per probe (one every few seconds):
    it proves new connections open, and leaves no client to close outside the lifespan."""
    client = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def broker_reachable(url: str, timeout: float) -> None:
    """RabbitMQ accepts a connection (AMQP handshake and login included); a hung one is abandoned."""

    def connect() -> None:
        with kombu.Connection(url, connect_timeout=timeout, transport_options={"read_timeout": timeout}) as conn:
            conn.connect()

    await anyio.to_thread.run_sync(connect, abandon_on_cancel=True)


async def storage_writable(folder: Path) -> None:
    """The shared video folder exists and takes a file; a hung volume is abandoned at the check's timeout."""

    def touch() -> None:
        if not folder.is_dir():
            raise RuntimeError(f"storage folder {folder} does not exist")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".readyz-"):
            pass

    await anyio.to_thread.run_sync(touch, abandon_on_cancel=True)


async def authorised(request: Request) -> None:
    """Every public route: a valid API key (401), then that key's rate limit (429). One dependency:
    each one FastAPI resolves costs every request (see ``panorama.gateway.auth``)."""
    await request.app.state.rate_limiter.check(await require_api_key(request))


plan_router = APIRouter(prefix="/debug", tags=["debug"])


@plan_router.get("/plan")
async def sizing_plan(request: Request) -> dict[str, Any]:
    """The sizing plan this worker runs with (upstream sockets per downstream included), and why."""
    return request.app.state.plan.as_dict()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway; the upstream pools open in the lifespan, after fork."""
    settings = settings or GatewaySettings.load()
    token = settings.internal_token
    internal_headers = {INTERNAL_TOKEN_HEADER: token.get_secret_value()} if token else {}
    io = Upstream(
        "io",
        str(settings.io_url),
        connections=settings.upstream_connections,
        connect_timeout=settings.upstream_connect_timeout,
        headers=internal_headers,
    )
    compute_upstream = Upstream(
        "compute",
        str(settings.compute_url),
        connections=settings.upstream_connections,
        connect_timeout=settings.upstream_connect_timeout,
        headers=internal_headers,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Upstream calls make their own client spans (panorama.gateway.upstream says why). Celery
        # publish spans parent the worker's run; Redis: the rate limiter, results.
        instrument_celery()
        instrument_redis()
        await io.start()
        await compute_upstream.start()
        try:
            yield
        finally:
            await io.close()
            await compute_upstream.close()
            await app.state.rate_limiter.aclose()

    app = create_service_app(
        service="gateway",
        settings=settings,
        lifespan=lifespan,
        readiness_checks=_checks,
        debug_routes=False,
        public=True,
    )
    app.state.io = io
    app.state.compute = compute_upstream
    for upstream in (io, compute_upstream):
        # panorama_upstream_connections{upstream,state=limit|in_use}, once a second.
        add_sampler(app, lambda u=upstream: record_upstream_pool(u.name, **u.pool_status()))
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_or_none, settings.redis_url, auth_failures=settings.auth_failure_limit
    )
    for router in PUBLIC_ROUTERS:
        app.include_router(router, dependencies=[Depends(authorised)])
    app.include_router(plan_router, dependencies=[Depends(authorised)])
    document_security(app, [route for router in (*PUBLIC_ROUTERS, plan_router) for route in router.routes])
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_bytes, max_depth=settings.max_json_depth)
    return app
