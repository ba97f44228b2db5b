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


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


async def test_deeply_nested_value_is_422_and_never_stored(
    make_io: IoClient, migrated_url: str, redis_url: str
) -> None:
    # 300 levels used to be stored, then every read of the key answered 500 until it expired.
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        body = '{"value": ' + nested(300) + ', "ttl_s": 30}'
        put = await client.put("/cached/poison", content=body, headers={"content-type": "application/json"})
        assert put.status_code == 422
        assert put.headers["content-type"] == "application/problem+json"
        assert "nested deeper than 64" in put.json()["detail"]
        assert (await client.get("/cached/poison")).status_code == 404
        # Brackets inside strings (and escaped quotes) do not count; 63 levels inside "value" fit.
        fine = '{"value": {"s": "[[[[\\"[[[[' + "[" * 100 + '", "v": ' + nested(62) + "}}"
        ok = await client.put("/cached/deep-ok", content=fine, headers={"content-type": "application/json"})
        assert ok.status_code == 200, ok.text
        assert (await client.get("/cached/deep-ok")).status_code == 200
    assert redis.Redis.from_url(redis_url).exists("cached:poison") == 0


async def test_oversized_json_body_is_413(make_io: IoClient, migrated_url: str, redis_url: str) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url, max_json_bytes=1000) as (client, _):
        body = '{"value": "' + "x" * 2000 + '"}'
        put = await client.put("/cached/big", content=body, headers={"content-type": "application/json"})
        assert put.status_code == 413
        assert put.json()["title"] == "Content Too Large"
        assert (await client.get("/cached/big")).status_code == 404
