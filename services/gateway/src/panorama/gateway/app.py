"""The gateway app: ``gunicorn ... 'panorama.gateway.app:create_app()'``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import Depends, FastAPI

from panorama.core.health import Check
from panorama.core.service import create_service_app
from panorama.gateway.auth import require_api_key
from panorama.gateway.routes import cached, compute, demo, proxy, safe, users, videos
from panorama.gateway.settings import GatewaySettings
from panorama.gateway.upstream import Upstream

PUBLIC_ROUTERS = (users.router, cached.router, proxy.router, demo.router, safe.router, compute.router, videos.router)


def _checks(app: FastAPI) -> Mapping[str, Check]:
    async def reachable(upstream: Upstream) -> None:
        response = await upstream.request("GET", "/healthz", timeout=app.state.settings.readiness_timeout)
        if response.status != 200:
            raise RuntimeError(f"{upstream.name} /healthz answered {response.status}")

    return {"io": lambda: reachable(app.state.io), "compute": lambda: reachable(app.state.compute)}


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway; the upstream pools open in the lifespan, after fork."""
    settings = settings or GatewaySettings.load()
    io = Upstream(
        "io",
        str(settings.io_url),
        connections=settings.upstream_connections,
        connect_timeout=settings.upstream_connect_timeout,
    )
    compute_upstream = Upstream(
        "compute",
        str(settings.compute_url),
        connections=settings.upstream_connections,
        connect_timeout=settings.upstream_connect_timeout,
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
    for router in PUBLIC_ROUTERS:
        app.include_router(router, dependencies=[Depends(require_api_key)])
    return app
