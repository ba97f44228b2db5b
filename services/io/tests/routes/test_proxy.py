"""``/proxy`` against a local aiohttp server on 127.0.0.1: allowed, refused, redirects, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from panorama.testing import free_port
from panorama.testing.local_site import local_site

IoClient = Callable[..., Any]


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A local website standing in for the outside world."""
    port = free_port()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from the target", headers={"X-Seen-Auth": request.headers.get("X-API-Key", "")})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def to_hello(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hello")

    async def to_localhost(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{port}/hello")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    routes = {
        "/hello": hello,
        "/slow": slow,
        "/big": big,
        "/to-hello": to_hello,
        "/to-localhost": to_localhost,
        "/loop": loop,
    }
    async with local_site(routes, port) as url:
        yield url


async def test_allow_listed_local_host_is_fetched(make_io: IoClient, target: str) -> None:
    async with make_io(proxy_allow_hosts="127.0.0.1") as (client, _):
        response = await client.get("/proxy", params={"url": f"{target}/hello"}, headers={"X-API-Key": "k" * 20})
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["body"], body["truncated"]) == (200, "hello from the target", False)
        assert body["content_type"].startswith("text/plain")


async def test_host_not_on_the_list_is_403(make_io: IoClient, target: str) -> None:
    async with make_io(proxy_allow_hosts="example.org") as (client, _):
        for url in (f"{target}/hello", "http://169.254.169.254/latest/meta-data/", "http://unlisted.example/"):
            response = await client.get("/proxy", params={"url": url})
            assert response.status_code == 403, url


async def test_allow_listed_name_resolving_to_loopback_is_403(make_io: IoClient, target: str) -> None:
    port = target.rsplit(":", 1)[1]
    async with make_io(proxy_allow_hosts="localhost") as (client, _):
        response = await client.get("/proxy", params={"url": f"http://localhost:{port}/hello"})
        assert response.status_code == 403
        assert "resolves to" in response.json()["detail"]


async def test_redirects_are_followed_only_to_permitted_hosts(make_io: IoClient, target: str) -> None:
    async with make_io(proxy_allow_hosts="127.0.0.1", proxy_max_redirects=2) as (client, _):
        ok = (await client.get("/proxy", params={"url": f"{target}/to-hello"})).json()
        assert ok["body"] == "hello from the target"
        assert ok["redirects"] == [f"{target}/to-hello"]
        assert (await client.get("/proxy", params={"url": f"{target}/to-localhost"})).status_code == 403
        assert (await client.get("/proxy", params={"url": f"{target}/loop"})).status_code == 502


async def test_slow_target_is_504_and_large_body_is_truncated(make_io: IoClient, target: str) -> None:
    async with make_io(proxy_allow_hosts="127.0.0.1", proxy_timeout=0.5, proxy_max_bytes=1000) as (client, _):
        slow = await client.get("/proxy", params={"url": f"{target}/slow"})
        assert slow.status_code == 504
        big = (await client.get("/proxy", params={"url": f"{target}/big"})).json()
        assert (len(big["body"]), big["truncated"]) == (1000, True)


async def test_unreachable_target_is_502_and_bad_url_is_422(make_io: IoClient) -> None:
    async with make_io(proxy_allow_hosts="127.0.0.1") as (client, _):
        closed = await client.get("/proxy", params={"url": f"http://127.0.0.1:{free_port()}/"})
        assert closed.status_code == 502
        for url in ("ftp://127.0.0.1/", "not a url"):
            bad = await client.get("/proxy", params={"url": url})
            assert bad.status_code == 422
            assert [e["field"] for e in bad.json()["errors"]] == ["query.url"]
