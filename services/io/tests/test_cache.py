"""The cache: the in-process TTL cache, and a Redis outage degrading reads to the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from panorama.io.cache import MemoryCache
from panorama.testing import metric_sum

IoClient = Callable[..., Any]
LOADS = "panorama_cache_loads_total"


async def test_memory_cache_expires_entries_and_evicts_least_recent() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.set("a", {"v": 1}, ttl=1)
    await cache.set("b", 2, ttl=60)
    assert await cache.get("a") == {"v": 1}
    await cache.set("c", 3, ttl=60)  # "b" is now least recently used
    assert await cache.get("b") is None
    assert await cache.get("c") == 3
    await asyncio.sleep(1.05)
    assert await cache.get("a") is None
    assert await cache.ttl("c") in (59, 60)


async def test_memory_cache_returns_copies() -> None:
    cache = MemoryCache(max_entries=10)
    value = {"items": [1]}
    await cache.set("k", value, ttl=60)
    value["items"].append(2)
    assert await cache.get("k") == {"items": [1]}


async def test_redis_outage_serves_reads_from_the_database(
    make_io: IoClient, migrated_url: str, throwaway_redis: Any, new_email: Callable[..., str]
) -> None:
    async with make_io(database_url=migrated_url, redis_url=throwaway_redis.url) as (client, _):
        user = (await client.post("/users", json={"name": "R", "email": new_email()})).json()
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "miss"
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "hit"
        assert (await client.put("/cached/k", json={"value": 1})).status_code == 200

        throwaway_redis.kill()
        bypassed = metric_sum((await client.get("/metrics")).text, LOADS, cache="users", cause="bypass")
        start = time.perf_counter()
        read = await client.get(f"/users/{user['id']}")
        assert read.status_code == 200
        assert read.json() == user
        assert read.headers["x-cache"] == "bypass"
        assert time.perf_counter() - start < 1.0
        # The read went to the database, and io's metrics say why.
        metrics = (await client.get("/metrics")).text
        assert metric_sum(metrics, LOADS, cache="users", cause="bypass") == bypassed + 1
        # Writes still succeed; their invalidation is logged and bounded by the TTL.
        assert (await client.patch(f"/users/{user['id']}", json={"name": "R2"})).status_code == 200
        # /cached has nothing behind it but the cache: 503, not a hang and not a 500.
        for response in (await client.get("/cached/k"), await client.put("/cached/k", json={"value": 2})):
            assert response.status_code == 503
            assert response.json()["title"] == "Cache unavailable"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["ok"] is False
        assert ready.json()["checks"]["database"]["ok"] is True
