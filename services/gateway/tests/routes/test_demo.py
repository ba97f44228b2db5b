"""``/demo/*`` through the gateway: each handler style answers, and io's loop really blocks on one."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest


@pytest.mark.parametrize(
    ("style", "detail"), [("async", "asyncio.sleep"), ("sync", "pg_sleep"), ("blocking", "async def")]
)
async def test_each_style_answers_through_the_gateway(gateway: httpx.AsyncClient, style: str, detail: str) -> None:
    response = await gateway.get(f"/demo/{style}", params={"delay": 0.05})
    assert response.status_code == 200
    assert response.json()["style"] == style
    assert detail in response.json()["detail"]


async def test_blocking_demo_stalls_io_health_but_async_does_not(gateway: httpx.AsyncClient, io_url: str) -> None:
    async with httpx.AsyncClient(base_url=io_url) as io:
        for style, stalled in (("async", False), ("blocking", True)):
            demo = asyncio.create_task(gateway.get(f"/demo/{style}", params={"delay": 1}))
            await asyncio.sleep(0.2)
            start = time.perf_counter()
            assert (await io.get("/healthz")).status_code == 200
            waited = time.perf_counter() - start
            assert (await demo).status_code == 200
            assert (waited > 0.5) is stalled, (style, waited)


async def test_delay_bounds_are_422(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/demo/async", params={"delay": 60})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["query.delay"]
