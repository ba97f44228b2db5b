"""API keys on the io routes: missing or wrong is 401, header or bearer passes, health needs none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

KEY = "io-routes-test-key-0123456789"
ROUTES = [("GET", "/users"), ("POST", "/users"), ("GET", "/users/1"), ("GET", "/cached/k"), ("PUT", "/cached/k"),
          ("GET", "/proxy?url=http://127.0.0.1/"), ("GET", "/demo/async"), ("GET", "/safe")]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_missing_or_wrong_key_is_401(make_gateway: Callable[..., Any], method: str, path: str) -> None:
    for headers in ({}, {"X-API-Key": "wrong-key-wrong-key-wrong"}, {"Authorization": "Bearer nope"}):
        async with make_gateway(headers=headers) as gateway:
            response = await gateway.request(method, path, json={"name": "x", "email": "x@y.z"})
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"


async def test_header_and_bearer_keys_pass(make_gateway: Callable[..., Any]) -> None:
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        async with make_gateway(headers=headers) as gateway:
            assert (await gateway.get("/demo/async", params={"delay": 0})).status_code == 200


async def test_health_needs_no_key(make_gateway: Callable[..., Any]) -> None:
    async with make_gateway() as gateway:
        assert (await gateway.get("/healthz")).status_code == 200


async def test_wrong_keys_are_limited_per_client_with_retry_after(io_url: str) -> None:
    import httpx

    from panorama.gateway.app import create_app
    from panorama.gateway.settings import GatewaySettings
    from panorama.testing import free_port

    settings = GatewaySettings(
        api_keys=KEY, io_url=io_url, compute_url=f"http://127.0.0.1:{free_port()}", log_json=False, cpu_limit=1.0,
        auth_failure_limit=5,
    )  # fmt: skip
    app = create_app(settings)

    def client(address: str, key: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway", headers={"X-API-Key": key})

    async with app.router.lifespan_context(app):
        async with client("203.0.113.7", "wrong-key-wrong-key-wrong") as guesser:
            codes = [(await guesser.get("/demo/async", params={"delay": 0})).status_code for _ in range(30)]
            assert codes[:5] == [401] * 5
            assert set(codes[5:]) == {429}
            limited = await guesser.get("/demo/async", params={"delay": 0})
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert limited.headers["content-type"] == "application/problem+json"
        # The guessing client is refused even with the right key until its minute is over ...
        async with client("203.0.113.7", KEY) as same:
            assert (await same.get("/demo/async", params={"delay": 0})).status_code == 429
        # ... while any other client is untouched.
        async with client("198.51.100.9", KEY) as other:
            assert (await other.get("/demo/async", params={"delay": 0})).status_code == 200
