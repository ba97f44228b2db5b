"""``/proxy`` through the gateway: allow-listed 127.0.0.1 target fetched, SSRF attempts refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from panorama.testing.local_site import local_site


@pytest.fixture
async def target() -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="outside world")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async with local_site({"/page": page, "/slow": slow}) as url:
        yield url


async def test_allow_listed_url_is_fetched(gateway: httpx.AsyncClient, target: str) -> None:
    response = await gateway.get("/proxy", params={"url": f"{target}/page"})
    assert response.status_code == 200
    assert response.json()["body"] == "outside world"


@pytest.mark.parametrize(
    "url",
    ["http://localhost:{port}/page", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
     "http://[::1]:{port}/page", "http://unlisted.example/"],
)  # fmt: skip
async def test_ssrf_attempts_are_403(gateway: httpx.AsyncClient, target: str, url: str) -> None:
    port = target.rsplit(":", 1)[1]
    response = await gateway.get("/proxy", params={"url": url.format(port=port)})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_slow_target_is_504(gateway: httpx.AsyncClient, target: str) -> None:
    response = await gateway.get("/proxy", params={"url": f"{target}/slow"})
    assert response.status_code == 504


async def test_missing_url_is_422(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/proxy")
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["query.url"]
