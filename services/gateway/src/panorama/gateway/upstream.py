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
from opentelemetry import propagate, trace
from pydantic import BaseModel, ValidationError

from panorama.core.contract import RELAYED_HEADERS
from panorama.core.errors import Problem

# Methods a retry may safely send again.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


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
        # The same pool without the tracing hooks, for requests nobody records (see request()).
        self._plain: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=self.connections, ttl_dns_cache=60)
        options: dict[str, Any] = {
            "timeout": aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            "auto_decompress": False,
            "headers": self.headers,
        }
        self._session = aiohttp.ClientSession(connector=connector, **options)
        self._plain = self._session
        if instrumented(self._session):
            # One connector, so one pool and one limit: the plain session does not own it.
            self._plain = aiohttp.ClientSession(connector=connector, connector_owner=False, **options)
            self._plain._trace_configs = [c for c in self._plain._trace_configs if not _is_otel(c)]

    async def close(self) -> None:
        if self._plain is not None and self._plain is not self._session:
            await self._plain.close()
        self._plain = None
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
        session = self.session
        if self._plain is not session and not trace.get_current_span().is_recording():
            # Not sampled: skip the client span machinery, but pass the trace on (sampled=0) so the
            # downstream makes the same decision.
            session = self._plain or session
            carrier: dict[str, str] = dict(headers or {})
            propagate.inject(carrier)
            headers = carrier
        try:
            async with asyncio.timeout(timeout):
                for attempt in (1, 2):
                    try:
                        async with session.request(
                            method, self.base_url + path, json=json, params=params, headers=headers, data=data
                        ) as resp:
                            body = await resp.read()
                            relayed = {k.lower(): v for k, v in resp.headers.items()}
                            return UpstreamResponse(resp.status, relayed, body, self.name)
                    except aiohttp.ServerDisconnectedError:
                        # A pooled keep-alive connection the downstream closed as one of its workers
                        # retired (a reload, max_requests): a read is safe to send again, once.
                        if method not in IDEMPOTENT or attempt == 2:
                            raise
                raise AssertionError("unreachable")
        except aiohttp.ConnectionTimeoutError:
            # Before TimeoutError (it is one): a downstream that cannot be reached in the connect
            # timeout is unavailable (503, retry), not slow (504).
            raise Problem(
                503,
                f"{self.name} is unavailable: no connection within {self.connect_timeout:g}s",
                title="Upstream unavailable",
                headers={"Retry-After": "1"},
            ) from None
        except TimeoutError:
            raise Problem(504, f"{self.name} did not answer within {timeout:g}s", title="Upstream timeout") from None
        except aiohttp.ClientError as exc:
            raise Problem(
                503,
                f"{self.name} is unavailable: {type(exc).__name__}",
                title="Upstream unavailable",
                headers={"Retry-After": "1"},
            ) from None


def _is_otel(config: aiohttp.TraceConfig) -> bool:
    # The mark the instrumentation leaves on its own trace config (its uninstrument_session checks it).
    return hasattr(config, "_is_instrumented_by_opentelemetry")


def instrumented(session: aiohttp.ClientSession) -> bool:
    """True when OpenTelemetry's aiohttp instrumentation hooked this session (tracing is on)."""
    return any(_is_otel(config) for config in session._trace_configs)


class UpstreamResponse:
    __slots__ = ("body", "headers", "name", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, name: str = "upstream") -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.name = name

    def relay(self, model: type[BaseModel] | None = None) -> Response:
        """The downstream's answer as the gateway's own response (status, body, useful headers).

        With ``model`` (the route's ``response_model``, from ``panorama.core.contract``) a success
        body is checked against it first: a downstream that breaks the contract is a 502 here, not
        a body the gateway's OpenAPI does not describe.
        """
        if model is not None and 200 <= self.status < 300:
            try:
                model.model_validate_json(self.body)
            except ValidationError as exc:
                raise Problem(
                    502,
                    f"{self.name} answered a body that breaks the contract ({model.__name__}): "
                    f"{exc.error_count()} error(s)",
                    title="Bad Gateway",
                ) from None
        headers = {k: self.headers[k] for k in RELAYED_HEADERS if k in self.headers and k != "content-type"}
        if self.status >= 500 and self.status not in (503, 504):
            # A downstream crash is not the caller's fault, but neither is it a bare 500 from here.
            return Response(
                content=self.body, status_code=502, headers=headers, media_type=self.headers.get("content-type")
            )
        return Response(
            content=self.body, status_code=self.status, headers=headers, media_type=self.headers.get("content-type")
        )
