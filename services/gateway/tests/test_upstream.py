"""The gateway's pooled upstream client against a local server: relay, 502, 503 and 504."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import BaseModel

from panorama.core.contract import ComputeResult
from panorama.core.errors import Problem
from panorama.gateway.upstream import Upstream
from panorama.testing import free_port
from panorama.testing.local_site import local_site


class Echo(BaseModel):
    q: str


@pytest.fixture
async def downstream() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"q": request.query.get("q")}, status=201, headers={"X-Cache": "hit", "X-Secret": "s"})

    async def crash(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async with local_site({"/ok": ok, "/crash": crash, "/slow": slow}) as url:
        yield url


@pytest.fixture
async def upstream(downstream: str) -> AsyncIterator[Upstream]:
    client = Upstream("test", downstream, connections=4, connect_timeout=0.5)
    await client.start()
    yield client
    await client.close()


async def test_relay_keeps_status_body_and_useful_headers_only(upstream: Upstream) -> None:
    response = (await upstream.request("GET", "/ok", params={"q": "v"}, timeout=2)).relay()
    assert response.status_code == 201
    assert response.body == b'{"q": "v"}'
    assert response.headers["x-cache"] == "hit"
    assert "x-secret" not in response.headers


async def test_relay_checks_a_success_body_against_the_contract(upstream: Upstream) -> None:
    answer = await upstream.request("GET", "/ok", params={"q": "v"}, timeout=2)
    assert answer.relay(Echo).status_code == 201  # {"q": "v"} is an Echo
    with pytest.raises(Problem) as caught:
        answer.relay(ComputeResult)  # ... but not a ComputeResult: the downstream broke the contract
    assert caught.value.status == 502
    assert "test" in caught.value.detail
    assert "ComputeResult" in caught.value.detail


async def test_downstream_500_becomes_502(upstream: Upstream) -> None:
    assert (await upstream.request("GET", "/crash", timeout=2)).relay().status_code == 502


async def test_slow_downstream_is_504_within_the_budget(upstream: Upstream) -> None:
    start = time.perf_counter()
    with pytest.raises(Problem) as caught:
        await upstream.request("GET", "/slow", timeout=0.3)
    assert caught.value.status == 504
    assert time.perf_counter() - start < 1.5


async def test_unreachable_downstream_is_503_with_retry_after() -> None:
    client = Upstream("gone", f"http://127.0.0.1:{free_port()}", connections=2, connect_timeout=0.5)
    await client.start()
    try:
        with pytest.raises(Problem) as caught:
            await client.request("GET", "/healthz", timeout=2)
    finally:
        await client.close()
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "1"


async def test_connect_timeout_is_503_not_504() -> None:
    # A listener whose accept queue is full (backlog 0, one connection never accepted): the kernel
    # drops further SYNs, so a connect hangs until the connect timeout.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    client = Upstream("full", f"http://127.0.0.1:{port}", connections=2, connect_timeout=0.3)
    await client.start()
    start = time.perf_counter()
    try:
        with pytest.raises(Problem) as caught:
            await client.request("GET", "/healthz", timeout=5)
    finally:
        await client.close()
        for sock in (*fillers, listener):
            sock.close()
    assert caught.value.status == 503
    assert "no connection within 0.3s" in caught.value.detail
    assert time.perf_counter() - start < 2


def test_unsampled_requests_skip_the_client_span_but_carry_the_trace(tmp_path: object) -> None:
    """With tracing on: a recording parent gets a client span, whose id the downstream sees as its
    parent; a non-recording one gets none, yet the downstream sees its trace id with sampled=0."""
    import json
    import os
    import subprocess
    import sys
    import textwrap

    from panorama.testing import OtlpReceiver

    code = textwrap.dedent(
        """
        import asyncio, json
        from aiohttp import web
        from opentelemetry import trace
        from panorama.core.telemetry import setup_telemetry, flush_telemetry
        from panorama.gateway.upstream import Upstream

        setup_telemetry("gw")
        seen = []

        async def echo(request):
            seen.append(request.headers.get("traceparent"))
            return web.json_response({})

        async def main():
            app = web.Application()
            app.router.add_get("/x", echo)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            upstream = Upstream("down", f"http://127.0.0.1:{port}", connections=4, connect_timeout=1)
            await upstream.start()
            tracer = trace.get_tracer("t")
            with tracer.start_as_current_span("sampled-parent"):
                await upstream.request("GET", "/x", timeout=5)
            unsampled = trace.NonRecordingSpan(trace.SpanContext(0xC * 2**124 + 1, 0xD, False, trace.TraceFlags(0)))
            with trace.use_span(unsampled):
                await upstream.request("GET", "/x", timeout=5)
            await upstream.close()
            await runner.cleanup()
            flush_telemetry(5)
            print(json.dumps({"seen": seen}))

        asyncio.run(main())
        """
    )
    with OtlpReceiver() as receiver:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "PANORAMA_LOG_JSON": "false"}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        out = json.loads(result.stdout.strip().splitlines()[-1])
        spans = receiver.wait_for(lambda s: any(span.name == "sampled-parent" for span in s), timeout=10)
    sampled, unsampled = out["seen"]
    assert int(sampled[-2:], 16) & 1  # the sampled flag (W3C level 2 may add the random flag)
    assert unsampled.startswith(f"00-{0xC * 2**124 + 1:032x}-")
    assert not int(unsampled[-2:], 16) & 1
    clients = [s for s in spans if s.kind == 3]  # SPAN_KIND_CLIENT
    assert len(clients) == 1  # only the sampled request's
    (client,) = clients
    parent = next(span for span in spans if span.name == "sampled-parent")
    assert client.parent_span_id == parent.span_id
    assert sampled.split("-")[2] == client.span_id  # the downstream's parent is the client span
    assert client.name == "GET"
    assert client.attributes["http.method"] == "GET"
    assert client.attributes["http.status_code"] == 200


async def test_every_call_tells_the_downstream_its_share_of_the_budget() -> None:
    """io and compute give up first when they know the gateway's budget (X-Request-Timeout)."""
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Request-Timeout"))
        return web.json_response({})

    async with local_site({"/r": record}) as url:
        upstream = Upstream("down", url, connections=2, connect_timeout=1)
        await upstream.start()
        try:
            await upstream.request("GET", "/r", timeout=5)
            await upstream.request("GET", "/r", timeout=1)
            await upstream.request("GET", "/r", timeout=100_000)
            await upstream.request("GET", "/r", timeout=5, headers={"X-Request-Timeout": "2.000"})
        finally:
            await upstream.close()
    assert seen == ["4.500", "0.800", "3600.000", "2.000"]
