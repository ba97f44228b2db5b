"""``/cached/{key}`` on real Redis: put, get with TTL, 404, key and body validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

IoClient = Callable[..., Any]


async def test_put_then_get_returns_value_and_ttl(make_io: IoClient, migrated_url: str, redis_url: str) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        put = await client.put("/cached/greeting", json={"value": {"hello": ["world"]}, "ttl_s": 30})
        assert put.status_code == 200
        got = await client.get("/cached/greeting")
        assert got.status_code == 200
        assert got.json()["value"] == {"hello": ["world"]}
        assert 0 < got.json()["ttl_s"] <= 30
    # Really in Redis, namespaced away from the users' entries.
    assert redis.Redis.from_url(redis_url).ttl("cached:greeting") > 0


async def test_unknown_key_is_404(make_io: IoClient, migrated_url: str, redis_url: str) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        assert (await client.get("/cached/never-set")).status_code == 404


async def test_bad_key_and_body_are_422(make_io: IoClient, migrated_url: str, redis_url: str) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        bad_key = await client.get("/cached/has space")
        assert bad_key.status_code == 422
        assert [e["field"] for e in bad_key.json()["errors"]] == ["path.key"]
        bad_ttl = await client.put("/cached/k", json={"value": 1, "ttl_s": 0})
        assert [e["field"] for e in bad_ttl.json()["errors"]] == ["body.ttl_s"]
        missing = await client.put("/cached/k", json={})
        assert [e["field"] for e in missing.json()["errors"]] == ["body.value"]
