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


async def test_100mb_json_body_is_refused_fast_without_reading_it(gateway: httpx.AsyncClient) -> None:
    import time

    sent = 0

    async def body():  # type: ignore[no-untyped-def]
        nonlocal sent
        chunk = b"[" + b"0," * (512 * 1024)
        for _ in range(100):  # ~100 MB, streamed without a Content-Length
            sent += len(chunk)
            yield chunk

    started = time.monotonic()
    response = await gateway.put("/cached/huge", content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert time.monotonic() - started < 2
    assert sent < 5 * 1024 * 1024  # stopped after the first MiB or so, not after 100 MB
    declared = await gateway.put(
        "/cached/huge", content=b"{}", headers={"content-type": "application/json", "content-length": "104857600"}
    )
    assert declared.status_code == 413


async def test_deep_json_is_422_at_the_gateway_and_nothing_is_stored(gateway: httpx.AsyncClient) -> None:
    body = '{"value": ' + "[" * 300 + "]" * 300 + "}"
    put = await gateway.put("/cached/gw-poison", content=body, headers={"content-type": "application/json"})
    assert put.status_code == 422
    assert (await gateway.get("/cached/gw-poison")).status_code == 404
