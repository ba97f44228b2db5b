"""Fixtures for io's tests: a migrated database, in-process apps, and servers a test may break.

The shared Postgres and Redis are never stopped: outage tests start their own redis-server or
Postgres cluster (initdb into a tmp dir) on a free port and stop that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from panorama.io import migrate
from panorama.io.app import create_app
from panorama.io.settings import IoSettings
from panorama.testing import ThrowawayPostgres, ThrowawayRedis


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    """The session database, migrated to head with the same code the one-shot job runs."""
    migrate.upgrade(database_url)
    return database_url


@contextlib.asynccontextmanager
async def io_client(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """io in-process (lifespan included) and an httpx client bound to it."""
    values: dict[str, Any] = {"log_json": False, "cpu_limit": 1.0, **overrides}
    app = create_app(IoSettings(**values))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://io", timeout=30) as client:
            yield client, app


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{time.time_ns()}@example.org"


IoClient = Callable[..., contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, FastAPI]]]


@pytest.fixture
def make_io() -> IoClient:
    """``async with make_io(**settings) as (client, app)``: io in-process with those settings."""
    return io_client


@pytest.fixture
def new_email() -> Callable[..., str]:
    """A factory of emails no other test uses."""
    return unique_email


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    with ThrowawayRedis(tmp_path) as server:
        yield server


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres().init().start()
    yield server
    server.remove()
