"""The gateway app: ``gunicorn ... 'panorama.gateway.app:create_app()'``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import Depends, FastAPI, Request

from panorama.core.health import Check
from panorama.core.internal import INTERNAL_TOKEN_HEADER
from panorama.core.service import create_service_app
from panorama.gateway.auth import ApiKeyDep
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

    return {"io": lambda: reachable(app.state.io), "compute": lambda: reachable(app.state.compute)}


async def authorised(request: Request, api_key: ApiKeyDep) -> None:
    """Every public route: a valid API key (401), then that key's rate limit (429)."""
    await request.app.state.rate_limiter.check(api_key)


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
        await io.start()
        await compute_upstream.start()
        try:
            yield
        finally:
            await io.close()
            await compute_upstream.close()

    app = create_service_app(
        service="gateway", settings=settings, lifespan=lifespan, readiness_checks=_checks, debug_routes=False
    )
    app.state.io = io
    app.state.compute = compute_upstream
    app.state.rate_limiter = RateLimiter(settings.rate_limit_or_none, settings.redis_url)
    for router in PUBLIC_ROUTERS:
        app.include_router(router, dependencies=[Depends(authorised)])
    app.add_middleware(SecurityHeadersMiddleware)
    return app
