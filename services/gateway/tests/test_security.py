"""Security headers, rate limiting and the internal token on the real gateway app."""

import httpx
import pytest
from aiohttp import web

from panorama.gateway.app import create_app
from panorama.gateway.settings import GatewaySettings
from panorama.testing.local_site import local_site

KEY = "security-test-key-0123456789"
TOKEN = "internal-token-0123456789abcdef"


@pytest.fixture
async def fake_io() -> tuple[str, list[dict[str, str]]]:
    """A stand-in downstream that records the headers the gateway sends it."""
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        return web.json_response({"key": request.match_info["key"], "value": "v"})  # a CachedValue, as io answers

    async with local_site({"/cached/{key}": echo}) as url:
        yield url, seen


def gateway(io_url: str, **overrides: object) -> object:
    values = {"api_keys": KEY, "io_url": io_url, "compute_url": io_url, "log_json": False, "cpu_limit": 1.0}
    return create_app(GatewaySettings(**{**values, **overrides}))


async def call(app, path: str, headers: dict[str, str]) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get(path, headers=headers)


async def test_responses_carry_security_headers(fake_io: tuple[str, list]) -> None:
    response = await call(gateway(fake_io[0]), "/cached/a", {"X-API-Key": KEY})
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_unauthorised_responses_carry_them_too(fake_io: tuple[str, list]) -> None:
    response = await call(gateway(fake_io[0]), "/cached/a", {})
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_rate_limit_answers_429_with_retry_after(fake_io: tuple[str, list]) -> None:
    app = gateway(fake_io[0], rate_limit="2/minute")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", headers={"X-API-Key": KEY}) as c:
            codes = [(await c.get("/cached/a")).status_code for _ in range(3)]
            last = await c.get("/cached/a")
    assert codes == [200, 200, 429]
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1


async def test_gateway_sends_the_internal_token_downstream(fake_io: tuple[str, list]) -> None:
    url, seen = fake_io
    response = await call(gateway(url, internal_token=TOKEN), "/cached/a", {"X-API-Key": KEY})
    assert response.status_code == 200
    assert seen[-1]["x-panorama-internal-token"] == TOKEN


def test_an_unparseable_rate_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="100/second"):
        GatewaySettings(api_keys=KEY, rate_limit="lots")
