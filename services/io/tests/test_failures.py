"""Failure mapping on real servers: pool exhaustion and a Postgres outage answer 503, then recover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import make_url

from panorama.io import migrate
from panorama.testing import free_port

IoClient = Callable[..., Any]


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_pool_exhaustion_returns_503_within_timeout_and_pool_recovers(
    make_io: IoClient, migrated_url: str
) -> None:
    pool_timeout = 1.0
    settings = {"database_url": migrated_url, "db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": pool_timeout}
    async with make_io(**settings) as (client, _):
        assert (await client.get("/users")).status_code == 200
        # Hold a lock that makes the pool's only connection wait inside a query.
        with psycopg.connect(_psycopg_dsn(migrated_url)) as holder:
            holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            stuck = asyncio.create_task(client.get("/users"))
            for _ in range(100):
                if (await client.get("/debug/pool")).json()["async_pool"]["checked_out"] == 1:
                    break
                await asyncio.sleep(0.02)
            start = time.perf_counter()
            refused = await client.get("/users")
            waited = time.perf_counter() - start
            assert refused.status_code == 503
            assert refused.json()["title"] == "Database pool exhausted"
            assert int(refused.headers["retry-after"]) >= 1
            assert pool_timeout * 0.8 <= waited < pool_timeout + 1.5
            holder.commit()
        assert (await stuck).status_code == 200
        after = await client.get("/users")
        assert after.status_code == 200
        assert (await client.get("/debug/pool")).json()["async_pool"]["checked_out"] == 0


async def test_postgres_outage_is_503_and_recovers_without_restart(make_io: IoClient, throwaway_postgres: Any) -> None:
    await asyncio.to_thread(migrate.upgrade, throwaway_postgres.url)
    async with make_io(database_url=throwaway_postgres.url, db_connect_timeout=1.0) as (client, _):
        created = await client.post("/users", json={"name": "Pg", "email": "pg@example.org"})
        assert created.status_code == 201
        assert (await client.get("/users")).status_code == 200

        await asyncio.to_thread(throwaway_postgres.stop)
        start = time.perf_counter()
        down = await client.get("/users")
        assert down.status_code == 503
        assert down.json()["title"] == "Database unavailable"
        assert "retry-after" in down.headers
        assert time.perf_counter() - start < 3
        assert (await client.get("/sync/users/1")).status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False

        await asyncio.to_thread(throwaway_postgres.start)
        # Same app, same engine: pre-ping replaces the dead connections on checkout.
        again = await client.get("/users")
        assert again.status_code == 200
        assert again.json()["total"] == 1
        assert (await client.get("/sync/users/1")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_a_database_nobody_listens_for_is_503_unreachable_and_named(make_io: IoClient) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres"
    async with make_io(database_url=url, db_connect_timeout=1.0) as (client, _):
        down = await client.get("/users")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert down.json()["detail"] == "the database is unreachable (ConnectionRefusedError); retry shortly"
