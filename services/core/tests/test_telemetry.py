"""Telemetry: OTLP export with the right service name when an endpoint is set, nothing at all when not."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from panorama.core.telemetry import (
    build_resource,
    extract_context,
    inject_context,
    telemetry_enabled,
    telemetry_endpoint,
    trace_carrier,
)
from panorama.testing import OtlpReceiver, free_port, gunicorn_command, running

HERE = Path(__file__).parent
OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    return {**env, "PANORAMA_LOG_JSON": "false", **extra}


def run_python(code: str, env: dict[str, str], timeout: float = 30) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter (a fresh global tracer provider); it prints one JSON line."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_endpoint_comes_from_the_standard_variables_traces_first() -> None:
    assert telemetry_endpoint({}) is None
    assert telemetry_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == "http://c:4318"
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/v1/traces"}
    assert telemetry_endpoint(both) == "http://t/v1/traces"
    assert telemetry_enabled(both)
    assert not telemetry_enabled({**both, "OTEL_SDK_DISABLED": "true"})
    assert not telemetry_enabled({**both, "OTEL_TRACES_EXPORTER": "none"})


def test_otel_service_name_overrides_the_services_own_name() -> None:
    assert build_resource("io", {}).attributes["service.name"] == "io"
    assert build_resource("io", {"OTEL_SERVICE_NAME": "io-canary"}).attributes["service.name"] == "io-canary"


def test_the_resource_serialises_its_attributes_for_a_hash_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import opentelemetry.sdk.resources as resources

    calls = []
    real_dumps = resources.dumps
    monkeypatch.setattr(resources, "dumps", lambda *a, **k: calls.append(1) or real_dumps(*a, **k))
    resource = build_resource("io", {})
    assert len({hash(resource) for _ in range(5)}) == 1
    assert len(calls) == 1  # the OTLP encoder hashes it once per exported span
    plain = resources.Resource(resource.attributes)
    assert resource == plain
    assert hash(resource) == hash(plain)


def test_the_trace_carrier_collects_every_propagator_field_in_one_pass() -> None:
    from opentelemetry import propagate
    from opentelemetry.propagators.textmap import TextMapPropagator

    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = [(b"traceparent", parent.encode()), (b"tracestate", b"a=1"), (b"x-api-key", b"secret"),
               (b"tracestate", b"b=2"), (b"baggage", b"k=v"), (b"x-panorama-synthetic", b"1")]  # fmt: skip
    carrier = trace_carrier({"headers": headers})
    assert carrier == {"traceparent": parent, "tracestate": "a=1,b=2", "baggage": "k=v", "x-panorama-synthetic": "1"}
    span_context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    assert format(span_context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert dict(span_context.trace_state) == {"a": "1", "b": "2"}

    class Custom(TextMapPropagator):  # OTEL_PROPAGATORS may name one that reads other headers
        @property
        def fields(self) -> set[str]:
            return {"X-Custom-Trace"}

        def extract(self, carrier, context=None, getter=None):  # type: ignore[no-untyped-def]
            return context

        def inject(self, carrier, context=None, setter=None) -> None:  # type: ignore[no-untyped-def]
            return None

    configured = propagate.get_global_textmap()
    propagate.set_global_textmap(Custom())
    try:
        found = trace_carrier({"headers": [*headers, (b"x-custom-trace", b"t")]})
    finally:
        propagate.set_global_textmap(configured)
    assert found == {"x-custom-trace": "t", "x-panorama-synthetic": "1"}
    assert "traceparent" in trace_carrier({"headers": headers})  # and back with the configured one


def _gate_outcome(
    gate_sampler: object, headers: list[tuple[bytes, bytes]], *, short: bool, path: str = "/x"
) -> dict[str, object]:
    """What the app under a SamplingGate sees for one request: which app ran it (traced or plain),
    and the current span's trace id, sampled flag and trace state, the baggage and the parent handed
    to the traced app, and whether OpenTelemetry's instrumentations run in it (``instrumented``);
    ``short=False`` takes the general path (extract, then ask the sampler)."""
    import asyncio

    from opentelemetry import baggage
    from opentelemetry import context as otel_context
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    from panorama.core import telemetry

    seen: dict[str, object] = {}

    def app(name: str):  # type: ignore[no-untyped-def]
        async def handle(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
            gated = telemetry._gated.get()
            context = gated[0] if gated else otel_context.get_current()
            span = trace.get_current_span(context).get_span_context()
            seen.update(
                app=name,
                trace_id=format(span.trace_id, "032x") if span.is_valid else None,
                sampled=span.trace_flags.sampled,
                remote=span.is_remote,
                trace_state=dict(span.trace_state or {}),
                baggage=dict(baggage.get_all(context)),
                instrumented=is_instrumentation_enabled(),
            )

        return handle

    gate = telemetry.SamplingGate(app("traced"), app("plain"), gate_sampler)
    if not short:
        gate.root_sampled = None
    scope = {"type": "http", "path": path, "headers": headers}
    asyncio.run(gate(scope, None, None))
    return seen


def test_the_gates_short_path_decides_as_the_propagators_and_the_sampler_do() -> None:
    import random

    from opentelemetry import context as otel_context
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        ParentBased,
        ParentBasedTraceIdRatio,
        TraceIdRatioBased,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from panorama.core.telemetry import _root_decision, _short_decision

    # The root's decision is the ratio sampler's own, trace id by trace id.
    sampler = ParentBasedTraceIdRatio(0.25)
    decide = _root_decision(sampler)
    ids = [random.getrandbits(128) for _ in range(4000)]
    expected = [sampler.should_sample(otel_context.Context(), i, "x").decision.is_sampled() for i in ids]
    assert [decide(i) for i in ids] == expected
    assert 700 < sum(expected) < 1300
    assert all(_root_decision(ParentBased(ALWAYS_ON))(i) for i in ids[:10])

    # Only the samplers whose decisions it knows; anything else asks the sampler itself.
    class Custom(TraceIdRatioBased):
        def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return super().should_sample(*args, **kwargs)

    assert _root_decision(TraceIdRatioBased(0.5)) is None  # not parent-based
    assert _root_decision(ParentBased(Custom(0.5))) is None
    assert _root_decision(ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)) is None

    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    judged_there = [
        f"00-{trace_id}-{span_id}-01",  # the caller sampled it
        f"00-{trace_id}-{span_id}-03",
        f"00-{'0' * 32}-{span_id}-00",  # invalid ids, versions, shapes: the propagator ignores them
        f"00-{trace_id}-{'0' * 16}-00",
        f"ff-{trace_id}-{span_id}-00",
        f"00-{trace_id}-{span_id}-00-extra",
        f"00-{trace_id.upper()}-{span_id}-00",
        "garbage",
    ]
    for header in judged_there:
        assert _short_decision({"traceparent": header}, decide) is None, header
    assert _short_decision({"traceparent": f"00-{trace_id}-{span_id}-00"}, decide) == (int(trace_id, 16), False)
    assert _short_decision({"traceparent": f"01-{trace_id}-{span_id}-02-future"}, decide) == (int(trace_id, 16), False)

    # Whole requests: the short path and the general one agree on what the app sees.
    always = ParentBasedTraceIdRatio(1.0)
    never = ParentBasedTraceIdRatio(0.0)
    cases: list[tuple[object, list[tuple[bytes, bytes]]]] = [
        (never, []),
        (always, []),
        (never, [(b"x-panorama-synthetic", b"bench")]),
        (always, [(b"traceparent", f"00-{trace_id}-{span_id}-00".encode())]),
        (always, [(b"traceparent", f"00-{trace_id}-{span_id}-01".encode())]),
        (never, [(b"traceparent", f"00-{trace_id}-{span_id}-01".encode())]),
        (never, [(b"traceparent", b"garbage")]),
        (always, [(b"traceparent", f"00-{trace_id}-{span_id}-00".encode()), (b"tracestate", b"k=v")]),
        (always, [(b"traceparent", f"00-{trace_id}-{span_id}-00".encode()), (b"baggage", b"synthetic=true")]),
        (never, [(b"baggage", b"synthetic=true")]),
    ]
    for gate_sampler, headers in cases:
        short = _gate_outcome(gate_sampler, headers, short=True)
        general = _gate_outcome(gate_sampler, headers, short=False)
        if short["trace_id"] is not None and not headers:  # a root's trace id is drawn at random
            short["trace_id"] = general["trace_id"] = "root"
        if headers == [] or headers[0][0] != b"traceparent" or headers[0][1] == b"garbage":
            short["trace_id"] = general["trace_id"] = "root" if short["trace_id"] else None
        assert short == general, headers
    assert _gate_outcome(never, [(b"traceparent", f"00-{trace_id}-{span_id}-00".encode())], short=True) == {
        "app": "plain", "trace_id": trace_id, "sampled": False, "remote": False, "trace_state": {}, "baggage": {},
        "instrumented": False,
    }  # fmt: skip
    assert _gate_outcome(never, [(b"baggage", b"synthetic=true")], short=True)["baggage"] == {"synthetic": "true"}

    # Another propagator configured: the general path, whatever the headers.
    configured = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        from panorama.core.telemetry import _propagation

        assert not _propagation().default
    finally:
        propagate.set_global_textmap(configured)
    assert _propagation().default


def test_no_instrumentation_runs_for_a_probe_or_an_unsampled_request_whose_spans_would_be_dropped() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, ParentBasedTraceIdRatio

    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    unsampled_caller = [(b"traceparent", f"00-{trace_id}-{span_id}-00".encode())]
    never, always = ParentBasedTraceIdRatio(0.0), ParentBasedTraceIdRatio(1.0)
    for headers in (
        [],
        unsampled_caller,
        [(b"baggage", b"synthetic=true")],
        [*unsampled_caller, (b"tracestate", b"k=v")],
    ):
        for short in (True, False):
            outcome = _gate_outcome(never, headers, short=short)
            assert (outcome["app"], outcome["instrumented"]) == ("plain", False), (headers, short)
            outcome = _gate_outcome(always, headers, short=short)
            expected = ("plain", False) if headers[:1] == unsampled_caller else ("traced", True)
            assert (outcome["app"], outcome["instrumented"]) == expected, (headers, short)
    # Probes and scrapes: no span, and none for the Redis ping or the query readiness makes.
    for sampler in (always, never):
        outcome = _gate_outcome(sampler, [], short=True, path="/readyz")
        assert (outcome["app"], outcome["trace_id"], outcome["instrumented"]) == ("plain", None, False)
    # A sampler that may sample a child of an unsampled span: its instrumentations still run.
    keeps_children = ParentBased(ALWAYS_OFF, local_parent_not_sampled=ALWAYS_ON)
    assert _gate_outcome(keeps_children, [], short=False) | {"trace_id": None} == {
        "app": "plain", "trace_id": None, "sampled": False, "remote": False, "trace_state": {}, "baggage": {},
        "instrumented": True,
    }  # fmt: skip


def test_without_an_endpoint_nothing_is_installed_and_no_thread_starts() -> None:
    out = run_python(
        """
        import json, threading
        from fastapi.testclient import TestClient
        from opentelemetry import trace
        from panorama.core import telemetry
        from panorama.core.service import create_service_app
        from panorama.core.settings import PanoramaSettings

        before = {t.name for t in threading.enumerate()}
        app = create_service_app(service="quiet", settings=PanoramaSettings(blocking_threshold_ms=0))
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
        print(json.dumps({
            "setup": telemetry.setup_telemetry("quiet"),
            "provider": type(trace.get_tracer_provider()).__name__,
            "sdk_provider": telemetry.tracer_provider() is not None,
            "instrumented": getattr(app, "_is_instrumented_by_opentelemetry", False),
            "helpers": [telemetry.instrument_redis(), telemetry.instrument_celery(),
                        telemetry.instrument_aiohttp_client(), telemetry.instrument_sqlalchemy(object())],
            "new_threads": sorted({t.name for t in threading.enumerate()} - before),
        }))
        """,
        clean_env(),
    )
    assert out == {
        "setup": False,
        "provider": "ProxyTracerProvider",
        "sdk_provider": False,
        "instrumented": False,
        "helpers": [False, False, False, False],
        "new_threads": [],
    }


def test_setup_is_idempotent_and_shutdown_is_bounded_when_the_collector_hangs() -> None:
    # A listening socket that never accepts: the exporter's connection waits for an answer forever.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)
        endpoint = f"http://127.0.0.1:{hung.getsockname()[1]}"
        out = run_python(
            """
            import json, threading, time
            from opentelemetry import trace
            from panorama.core import telemetry

            first = telemetry.setup_telemetry("hung")
            provider = telemetry.tracer_provider()
            second = telemetry.setup_telemetry("hung")
            batch_threads = [t.name for t in threading.enumerate() if t.name.startswith("OtelBatch")]
            with trace.get_tracer("t").start_as_current_span("s"):
                pass
            start = time.monotonic()
            done = telemetry.shutdown_telemetry(timeout=0.5)
            print(json.dumps({
                "first": first, "second": second, "same": telemetry.tracer_provider() is provider,
                "global": trace.get_tracer_provider() is provider, "batch_threads": len(batch_threads),
                "done": done, "seconds": time.monotonic() - start,
            }))
            """,
            clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="30"),
        )
    assert (out["first"], out["second"], out["same"], out["global"]) == (True, True, True, True)
    assert out["batch_threads"] == 1
    assert out["done"] is False
    assert out["seconds"] < 2.0  # the behaviour under test is the bound: 0.5 s, not the exporter's 30 s


def _span_from_carrier(carrier: dict[str, str]) -> tuple[str, str]:
    context = trace.get_current_span(extract_context(carrier)).get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def test_the_trace_context_crosses_into_a_pool_child() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        carrier = inject_context()
    assert carrier["traceparent"].startswith("00-")
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("fork")) as pool:
        trace_id, span_id = pool.submit(_span_from_carrier, carrier).result(timeout=30)
    context = parent.get_span_context()
    assert (trace_id, span_id) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    assert inject_context() == {}  # outside any span there is nothing to carry


@pytest.mark.slow
def test_gunicorn_workers_export_request_spans_with_the_service_name_and_flush_on_shutdown(tmp_path: Path) -> None:
    # Under the panorama namespace, as the real services are: post_fork names the service from
    # the app spec (panorama.sample.app -> "sample").
    package = tmp_path / "src" / "panorama" / "sample"
    package.mkdir(parents=True)
    (package / "app.py").write_text((HERE / "sample_app.py").read_text())
    port = free_port()
    cmd = gunicorn_command("panorama.sample.app:create_app()", port)
    cmd[3:3] = ["--pythonpath", str(tmp_path / "src")]
    with OtlpReceiver() as receiver:
        # A minute between batches: the spans can only arrive through the flush at shutdown.
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="60000")
        with running(cmd, env, tmp_path / "gunicorn.log", url=f"http://127.0.0.1:{port}") as service:
            import httpx

            assert httpx.get(f"http://127.0.0.1:{port}/debug/plan", timeout=5).status_code == 200
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            assert receiver.received() == []
            service.stop()
        spans = receiver.wait_for(lambda s: any(span.name == "GET /debug/plan" for span in s), timeout=10)
    servers = [s for s in spans if s.kind == 2]  # SPAN_KIND_SERVER
    assert {s.service for s in spans} == {"sample"}
    assert [s.name for s in servers] == ["GET /debug/plan"]  # /readyz (waited on) and /healthz are excluded
    assert servers[0].attributes["http.route"] == "/debug/plan"
    assert servers[0].parent_span_id is None


def test_the_sampling_gate_sends_only_sampled_requests_through_the_instrumentation(tmp_path: Path) -> None:
    # Roots never sampled (ratio 0): a request is traced only when its caller sampled it, and an
    # unsampled one skips the OpenTelemetry middleware yet still propagates its trace id, sampled=0.
    code = f"""
        import asyncio, json, sys
        sys.path.insert(0, {str(HERE)!r})
        import httpx
        from opentelemetry import trace
        from panorama.core.telemetry import SamplingGate, setup_telemetry, flush_telemetry, inject_context
        import sample_app

        setup_telemetry("gate")
        app = sample_app.create_app()
        seen = []

        @app.get("/probe-context")
        async def probe_context():
            ctx = trace.get_current_span().get_span_context()
            seen.append((format(ctx.trace_id, "032x"), ctx.trace_flags.sampled, inject_context()["traceparent"]))
            return {{}}

        async def main():
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
                    await c.get("/probe-context")
                    await c.get("/probe-context", headers={{"traceparent": "00-{"a" * 32}-{"b" * 16}-01"}})
                    await c.get("/probe-context", headers={{"traceparent": "00-{"c" * 32}-{"d" * 16}-00"}})
            flush_telemetry(5)
            print(json.dumps({{"stack": type(app.middleware_stack).__name__, "seen": seen}}))

        asyncio.run(main())
    """
    with OtlpReceiver() as receiver:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0",
        )
        out = run_python(code, env)
        spans = receiver.wait_for(lambda s: any(span.name == "GET /probe-context" for span in s), timeout=10)
    assert out["stack"] == "SamplingGate"
    (root, sampled, unsampled) = out["seen"]
    assert root[1] is False  # a root at ratio 0: not sampled, and not recorded
    assert root[2].endswith("-00")
    assert sampled[0] == "a" * 32
    assert sampled[1] is True
    assert unsampled[0] == "c" * 32  # the caller's trace id goes on, with sampled=0
    assert unsampled[2].startswith(f"00-{'c' * 32}-")
    assert unsampled[2].endswith("-00")
    servers = [s for s in spans if s.name == "GET /probe-context"]
    assert len(servers) == 1  # only the request whose caller sampled it
    assert servers[0].trace_id == "a" * 32
    assert servers[0].attributes["http.route"] == "/probe-context"


def test_an_always_on_root_is_sampled_once_by_the_gate_and_the_sdk(tmp_path: Path) -> None:
    code = f"""
        import asyncio, json, sys
        sys.path.insert(0, {str(HERE)!r})
        import httpx
        from panorama.core.telemetry import setup_telemetry, flush_telemetry
        import sample_app

        setup_telemetry("gate")
        app = sample_app.create_app()

        async def main():
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
                    for _ in range(5):
                        await c.get("/debug/plan")
            flush_telemetry(5)
            print(json.dumps({{}}))

        asyncio.run(main())
    """
    with OtlpReceiver() as receiver:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="1",
        )
        run_python(code, env)
        spans = receiver.wait_for(lambda s: sum(span.name == "GET /debug/plan" for span in s) >= 5, timeout=10)
    assert sum(s.name == "GET /debug/plan" for s in spans) == 5
