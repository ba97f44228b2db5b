"""``/safe``: the operation finishes within its budget, or the caller gets a clear 504 in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

KEY = {"X-API-Key": "io-routes-test-key-0123456789"}


async def test_fast_operation_completes(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/safe", params={"delay": 0.05})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["budget_s"]) == ("completed", 1.0)


async def test_slow_operation_is_504_with_a_clear_body_when_the_budget_runs_out(
    make_gateway: Callable[..., Any],
) -> None:
    async with make_gateway(headers=KEY, timeout_safe=0.5) as gateway:
        start = time.perf_counter()
        response = await gateway.get("/safe", params={"delay": 3})
        elapsed = time.perf_counter() - start
    assert response.status_code == 504
    body = response.json()
    assert body["title"] == "Operation timed out"
    assert "0.5s budget" in body["detail"]
    assert (body["budget_s"], body["delay_s"]) == (0.5, 3)
    assert elapsed < 2


async def test_bad_delay_is_422(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/safe", params={"delay": "x"})
    assert [e["field"] for e in response.json()["errors"]] == ["query.delay"]
