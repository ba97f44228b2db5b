"""``/cached/{key}`` through the gateway to io and Redis."""

from __future__ import annotations

import httpx


async def test_put_then_get_round_trips_through_redis(gateway: httpx.AsyncClient, redis_url: str) -> None:
    put = await gateway.put("/cached/gw-key", json={"value": {"n": 1}, "ttl_s": 20})
    assert put.status_code == 200
    got = await gateway.get("/cached/gw-key")
    assert got.status_code == 200
    assert got.json()["value"] == {"n": 1}
    assert 0 < got.json()["ttl_s"] <= 20


async def test_unknown_key_is_404_and_bad_input_is_422(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/cached/gw-missing")).status_code == 404
    bad = await gateway.put("/cached/gw-key", json={"value": 1, "ttl_s": -5})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["body.ttl_s"]
