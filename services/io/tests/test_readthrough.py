"""Read-through caching against real Postgres and Redis: bursts and expiries under load are one query per key.

Queries are counted where they happen: a SQLAlchemy cursor event on io's own engine, counting the
statements that read the users table. io's own counts (``panorama_cache_loads_total``,
``panorama_cache_coalesced_total``) are read off its ``/metrics`` and must agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from sqlalchemy import event

from panorama.testing import metric_sum

IoClient = Callable[..., Any]
NewEmail = Callable[..., str]
CAUSES = ("miss", "refresh", "bypass")


@contextlib.contextmanager
def user_queries(app: FastAPI) -> Iterator[list[str]]:
    """Every SELECT on the users table io's async engine sends while the block runs."""
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "users" in statement:
            seen.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def cache_metrics(client: httpx.AsyncClient) -> dict[str, float]:
    """io's read-through counters for users as its /metrics shows them: loads by cause, and coalesced."""
    text = (await client.get("/metrics")).text
    out = {cause: metric_sum(text, "panorama_cache_loads_total", cache="users", cause=cause) for cause in CAUSES}
    return {**out, "coalesced": metric_sum(text, "panorama_cache_coalesced_total", cache="users")}


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The counters that changed, by how much."""
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


async def burst(client: httpx.AsyncClient, path: str, n: int) -> list[httpx.Response]:
    return await asyncio.gather(*(client.get(path) for _ in range(n)))


async def test_a_hundred_concurrent_misses_are_one_query(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, app):
        user = (await client.post("/users", json={"name": "Burst", "email": new_email()})).json()
        before = await cache_metrics(client)
        with user_queries(app) as queries:
            responses = await burst(client, f"/users/{user['id']}", 100)
        assert [r.status_code for r in responses] == [200] * 100
        assert all(r.json() == user for r in responses)
        assert len(queries) == 1
        assert sorted({r.headers["x-cache"] for r in responses}) == ["miss"]
        assert app.state.read_through.coalesced == 99
        assert moved(before, await cache_metrics(client)) == {"miss": 1, "coalesced": 99}
        # The next reads are hits and query nothing.
        with user_queries(app) as queries:
            assert {r.headers["x-cache"] for r in await burst(client, f"/users/{user['id']}", 20)} == {"hit"}
        assert queries == []


async def test_an_unknown_user_burst_is_one_query_and_all_404(
    make_io: IoClient, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, app):
        with user_queries(app) as queries:
            responses = await burst(client, "/users/2147483000", 50)
        assert {r.status_code for r in responses} == {404}
        assert len(queries) == 1


async def test_an_expiry_under_load_is_one_query(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, app):
        user = (await client.post("/users", json={"name": "Hot", "email": new_email()})).json()
        path = f"/users/{user['id']}"
        await client.get(path)
        direct = redis.Redis.from_url(redis_url)
        with user_queries(app) as queries:
            for _ in range(3):
                direct.delete(f"user:{user['id']}")  # the entry expires while 100 readers arrive
                responses = await burst(client, path, 100)
                assert {r.status_code for r in responses} == {200}
        direct.close()
        assert len(queries) == 3  # one per expiry


async def test_a_hot_key_is_refreshed_ahead_by_one_request_while_the_others_hit(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    # TTL 5 s: the refresh window is its last second. Steady load for 9 s (almost two TTLs) never
    # sees a miss, and each TTL costs one refresh query, not one per reader.
    async with make_io(database_url=migrated_url, redis_url=redis_url, cache_ttl=5) as (client, app):
        user = (await client.post("/users", json={"name": "Ahead", "email": new_email()})).json()
        path = f"/users/{user['id']}"
        assert (await client.get(path)).headers["x-cache"] == "miss"
        before = await cache_metrics(client)
        outcomes: list[str] = []

        async def reader(stop: float) -> None:
            while time.monotonic() < stop:
                response = await client.get(path)
                assert response.status_code == 200
                outcomes.append(response.headers["x-cache"])
                await asyncio.sleep(0.01)

        with user_queries(app) as queries:
            stop = time.monotonic() + 9
            await asyncio.gather(*(reader(stop) for _ in range(20)))
            await asyncio.sleep(0.2)  # let a refresh started at the very end finish
        assert len(outcomes) > 200
        assert set(outcomes) == {"hit"}
        assert 1 <= len(queries) <= 3  # 9 s / 4 s between refreshes
        assert app.state.read_through.refreshes == len(queries)
        assert moved(before, await cache_metrics(client)) == {"refresh": len(queries)}


async def test_two_workers_share_one_load_through_the_redis_lock(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with (
        make_io(database_url=migrated_url, redis_url=redis_url) as (first, first_app),
        make_io(database_url=migrated_url, redis_url=redis_url) as (second, second_app),
    ):
        user = (await first.post("/users", json={"name": "Fleet", "email": new_email()})).json()
        path = f"/users/{user['id']}"
        with user_queries(first_app) as one, user_queries(second_app) as two:
            responses = [*await asyncio.gather(burst(first, path, 50), burst(second, path, 50))]
        assert {r.status_code for group in responses for r in group} == {200}
        assert len(one) + len(two) == 1


@pytest.mark.parametrize("ttl", [1])
async def test_without_redis_the_memory_cache_coalesces_too(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, ttl: int
) -> None:
    async with make_io(database_url=migrated_url, cache_ttl=ttl) as (client, app):
        user = (await client.post("/users", json={"name": "Mem", "email": new_email()})).json()
        with user_queries(app) as queries:
            responses = await burst(client, f"/users/{user['id']}", 100)
        assert {r.status_code for r in responses} == {200}
        assert len(queries) == 1
