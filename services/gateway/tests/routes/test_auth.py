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
