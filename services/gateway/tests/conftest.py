"""Fixtures for the gateway's io routes: a real io (gunicorn, Postgres, Redis) and the gateway in-process.

The gateway runs in-process (httpx's ASGI transport, lifespan included) while io runs as the real
gunicorn process it is in production, so every call crosses the gateway's aiohttp upstream pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from panorama.gateway.app import create_app
from panorama.gateway.settings import GatewaySettings
from panorama.io import migrate
from panorama.testing import free_port, gunicorn_command, running

GATEWAY_API_KEY = "io-routes-test-key-0123456789"


@pytest.fixture(scope="session")
def io_url(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real io (one gunicorn worker) on Postgres and Redis, demos on, 127.0.0.1 allow-listed."""
    migrate.upgrade(database_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PANORAMA_DATABASE_URL": database_url,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_DEMO_ANTIPATTERNS": "true",
        "PANORAMA_PROXY_ALLOW_HOSTS": "127.0.0.1",
        "PANORAMA_PROXY_TIMEOUT": "1",
        "PANORAMA_LOG_JSON": "false",
    }
    log = Path(tmp_path_factory.mktemp("io")) / "io.log"
    with running(gunicorn_command("panorama.io.app:create_app()", port), env, log, url=url):
        yield url


@contextlib.asynccontextmanager
async def gateway_client(
    io: str, *, headers: dict[str, str] | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, Any] = {
        "api_keys": GATEWAY_API_KEY,
        "io_url": io,
        "compute_url": f"http://127.0.0.1:{free_port()}",
        "log_json": False,
        "cpu_limit": 1.0,
        **overrides,
    }
    app = create_app(GatewaySettings(**values))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers, timeout=30) as c:
            yield c


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_gateway(io_url: str) -> GatewayFactory:
    """``async with make_gateway(headers=..., **settings) as client``: a gateway in front of the real io."""
    return lambda **kw: gateway_client(io_url, **kw)


@pytest.fixture
async def gateway(io_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway client that sends a valid API key."""
    async with gateway_client(io_url, headers={"X-API-Key": GATEWAY_API_KEY}) as client:
        yield client
