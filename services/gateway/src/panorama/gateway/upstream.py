"""One pooled HTTP client per downstream, created in the lifespan and shared by every request.

aiohttp, not httpx: as a high-concurrency client on loopback aiohttp measured ~10x httpx's
throughput here (see loadtests/ and docs/benchmarks.md). Failures map to clear statuses: a
downstream that refuses or drops the connection is 503, one that runs out of budget is 504.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from fastapi import Response

from panorama.core.errors import Problem

# Headers worth passing back from a downstream; hop-by-hop and length headers are not.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RELAYED_HEADERS = ("content-type", "retry-after", "location", "cache-control", "x-cache")


class Upstream:
    """A downstream service: its base URL and one connection pool. Building it does no I/O."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        connections: int,
        connect_timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.headers = dict(headers or {})
        self.base_url = base_url.rstrip("/")
        self.connections = connections
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=self.connections, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            auto_decompress=False,
            headers=self.headers,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream {self.name} used before the lifespan started it")
        return self._session

    def pool_status(self) -> dict[str, int]:
        connector = self._session.connector if self._session else None
        in_use = sum(len(v) for v in getattr(connector, "_acquired_per_host", {}).values()) if connector else 0
        return {"limit": self.connections, "in_use": in_use}

    async def request(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        json: Any = None,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> UpstreamResponse:
        """Call the downstream under ``timeout`` seconds; raise 503/504 problems on failure."""
        try:
            async with asyncio.timeout(timeout):
                for attempt in (1, 2):
                    try:
                        async with self.session.request(
                            method, self.base_url + path, json=json, params=params, headers=headers, data=data
                        ) as resp:
                            body = await resp.read()
                            return UpstreamResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, body)
                    except aiohttp.ServerDisconnectedError:
                        # A pooled keep-alive connection the downstream closed as one of its workers
                        # retired (a reload, max_requests): a read is safe to send again, once.
                        if method not in IDEMPOTENT or attempt == 2:
                            raise
                raise AssertionError("unreachable")
        except TimeoutError:
            raise Problem(504, f"{self.name} did not answer within {timeout:g}s", title="Upstream timeout") from None
        except aiohttp.ClientError as exc:
            raise Problem(
                503,
                f"{self.name} is unavailable: {type(exc).__name__}",
                title="Upstream unavailable",
                headers={"Retry-After": "1"},
            ) from None


class UpstreamResponse:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def relay(self) -> Response:
        """The downstream's answer as the gateway's own response (status, body, useful headers)."""
        headers = {k: self.headers[k] for k in RELAYED_HEADERS if k in self.headers and k != "content-type"}
        if self.status >= 500 and self.status not in (503, 504):
            # A downstream crash is not the caller's fault, but neither is it a bare 500 from here.
            return Response(
                content=self.body, status_code=502, headers=headers, media_type=self.headers.get("content-type")
            )
        return Response(
            content=self.body, status_code=self.status, headers=headers, media_type=self.headers.get("content-type")
        )
