"""One pooled HTTP client per downstream, created in the lifespan and shared by every request.

aiohttp, not httpx: as a high-concurrency client on loopback aiohttp measured ~10x httpx's
throughput here (see loadtests/ and docs/benchmarks.md). Failures map to clear statuses: a
downstream that refuses or drops the connection is 503, one that runs out of budget is 504.

Tracing: the client span is made here, not by OpenTelemetry's aiohttp instrumentation. Its hooks
ran through aiohttp's trace signals on every request (attrs objects per signal, two signal sends)
and were 16 % of a traced gateway's samples on ``GET /users/{id}`` (py-spy, docs/observability.md);
one span opened around the call, with the same name and ``http.*`` attributes, is a fraction of it.
An unsampled request opens no span at all and only passes ``traceparent`` on (``sampled=0``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from fastapi import Response
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import BaseModel, ValidationError

from panorama.core.contract import DEADLINE_HEADER, DEADLINE_MAX_S, RELAYED_HEADERS
from panorama.core.errors import Problem
from panorama.core.telemetry import current_span

# Methods a retry may safely send again.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


def downstream_timeout(budget: float) -> float:
    """What a downstream is told it has (``X-Request-Timeout``): the budget less the time to relay
    its answer back. It then gives up first and says why (compute cancels the queued task, io stops
    queueing for a database connection) instead of the gateway timing out blind."""
    return min(max(budget - 0.5, budget * 0.8), DEADLINE_MAX_S)


# Resolved lazily: the global provider is set after fork, once the module is long imported.
_tracer = trace.get_tracer("panorama.gateway.upstream")


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
        options: dict[str, Any] = {
            "timeout": aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            "auto_decompress": False,
            "headers": self.headers,
        }
        self._session = aiohttp.ClientSession(connector=connector, **options)

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
        """Call the downstream under ``timeout`` seconds; raise 503/504 problems on failure.

        ``traceparent`` and the downstream's share of the budget (``X-Request-Timeout``) go with every
        call; a sampled request records a CLIENT span around it.
        """
        carrier: dict[str, str] = {DEADLINE_HEADER: f"{downstream_timeout(timeout):.3f}", **(headers or {})}
        if not trace.get_current_span().is_recording():
            propagate.inject(carrier)  # sampled=0: the downstream makes the same decision
            return await self._call(method, path, timeout, json, params, carrier, data)
        url = self.base_url + path
        attributes = {"http.method": method, "http.url": url}  # as the aiohttp instrumentation names them
        with current_span(_tracer.start_span(method, kind=SpanKind.CLIENT, attributes=attributes)) as span:
            propagate.inject(carrier)
            response = await self._call(method, path, timeout, json, params, carrier, data)
            span.set_attribute("http.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    async def _call(
        self,
        method: str,
        path: str,
        timeout: float,
        json: Any,
        params: Mapping[str, str | int | float] | None,
        headers: Mapping[str, str],
        data: Any,
    ) -> UpstreamResponse:
        session = self.session
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
