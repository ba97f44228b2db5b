"""OpenTelemetry tracing for every process, configured only by the standard ``OTEL_*`` variables.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318     # or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    OTEL_SERVICE_NAME=...        # overrides the service's own name
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1
    OTEL_BSP_MAX_QUEUE_SIZE / OTEL_BSP_SCHEDULE_DELAY / OTEL_BSP_MAX_EXPORT_BATCH_SIZE

:func:`setup_telemetry` runs once per process after fork (gunicorn ``post_fork``, Celery
``worker_process_init``, the compute pool's initializer, and the shared lifespan for processes
started without them): exporter threads created before a fork do not survive it. With no endpoint
it installs nothing: no TracerProvider, no thread, no middleware, and the ``instrument_*``
helpers return at once, so an unconfigured service pays nothing for tracing.

Export is OTLP over HTTP/protobuf through a BatchSpanProcessor, whose queue is bounded
(``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048: spans beyond it are dropped, never buffered without
limit). :func:`shutdown_telemetry` flushes within a time budget whatever the collector does.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from panorama.core.settings import PanoramaSettings

log = logging.getLogger(__name__)

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Probes and scrapes would be most of the spans and say nothing about a request.
EXCLUDED_PATHS = ("/healthz", "/readyz", "/metrics")
DEFAULT_SHUTDOWN_TIMEOUT = 5.0

_lock = threading.Lock()
# Per process image. A forked child inherits the provider and the SDK restarts the batch thread
# after fork (os.register_at_fork), so "already set up" stays true and correct there.
_provider: TracerProvider | None = None
_exit_hooks_pid: int | None = None


def telemetry_endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    """The OTLP traces endpoint the standard variables name, or ``None``."""
    for name in ENDPOINT_VARS:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def telemetry_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """True when spans would be exported: an endpoint is set and the SDK is not switched off.

    Reads the environment only, so an app factory can decide at build time (no I/O) whether to
    add the tracing middleware.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return telemetry_endpoint(environ) is not None


def build_resource(service_name: str, environ: Mapping[str, str] = os.environ) -> Resource:
    """``service.name`` is ``OTEL_SERVICE_NAME`` if set, else the service's own name."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    name = environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES (e.g. k8s.pod.name from the chart).
    created = Resource.create({SERVICE_NAME: name})
    return _resource_hashed_once()(created.attributes, created.schema_url)


@functools.cache
def _resource_hashed_once() -> type[Resource]:
    """A Resource that computes its hash once. Measured reason: the OTLP encoder groups every span
    of a batch by its resource, and ``Resource.__hash__`` serialises the attributes to JSON each
    time: 12 of the 47 µs it took to encode one span. The attributes never change after start-up."""
    from opentelemetry.sdk.resources import Resource

    class HashedOnceResource(Resource):
        _hash: int | None = None

        def __hash__(self) -> int:
            if self._hash is None:
                self._hash = super().__hash__()
            return self._hash

    return HashedOnceResource


def setup_telemetry(service_name: str, settings: PanoramaSettings | None = None) -> bool:
    """Install the tracer provider and OTLP exporter for this process; True when tracing is on.

    Idempotent: later calls (post_fork then the lifespan, say) return the first call's answer.
    ``settings`` is accepted so that every per-process hook has the same shape; telemetry itself
    follows the ``OTEL_*`` variables only, as every OpenTelemetry SDK does.
    """
    global _provider
    if not telemetry_enabled():
        return False
    with _lock:
        if _provider is None:
            _provider = _install_provider(service_name)
            log.info("tracing to %s as %s", telemetry_endpoint(), _provider.resource.attributes.get("service.name"))
    _register_exit_hooks()
    return True


def _install_provider(service_name: str) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # shutdown_on_exit=False: the SDK's own atexit shutdown waits up to 30 s for a dead
    # collector; ours is bounded (see shutdown_telemetry).
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    provider = TracerProvider(
        resource=build_resource(service_name),
        sampler=GateSampler(_get_from_env_or_default()),
        shutdown_on_exit=False,
    )
    # The exporter and the processor read OTEL_EXPORTER_OTLP_* and OTEL_BSP_* themselves.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def _register_exit_hooks() -> None:
    """A bounded flush at exit, once per process (a forked child registers its own)."""
    global _exit_hooks_pid
    import multiprocessing.util

    if _exit_hooks_pid == os.getpid():
        return
    _exit_hooks_pid = os.getpid()
    atexit.register(shutdown_telemetry)
    # multiprocessing children leave through os._exit, which skips atexit, and clear the finalizers
    # they inherit; one registered in the child still runs, so a pool child flushes its last spans.
    multiprocessing.util.Finalize(None, shutdown_telemetry, exitpriority=10)


def _bounded(action: str, timeout: float) -> bool:
    """Run the provider's flush or shutdown in a helper thread and wait at most ``timeout``.

    The SDK's own timeouts are not enforced (force_flush ignores its argument, an export to a
    collector that hangs waits for the exporter's own timeout and retries), so the bound is ours.
    """
    provider = _provider
    if provider is None:
        return True
    call = getattr(provider, action)
    worker = threading.Thread(target=call, name=f"otel-{action}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.warning("telemetry %s did not finish within %.1fs; unsent spans are dropped", action, timeout)
        return False
    return True


def flush_telemetry(timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> bool:
    """Export the queued spans now, waiting at most ``timeout`` seconds."""
    return _bounded("force_flush", timeout)


def shutdown_telemetry(timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> bool:
    """Flush and stop the exporter, waiting at most ``timeout`` seconds. Safe to call twice.

    The provider stays installed (the API lets a process set it once) and drops later spans.
    """
    return _bounded("shutdown", timeout)


def tracer_provider() -> TracerProvider | None:
    """This process's SDK provider, or ``None`` when tracing is off."""
    return _provider


# --- instrumentation: each helper is a no-op when tracing is off, and imports its library lazily.


def instrument_fastapi(app: FastAPI, *, tracer_provider: Any = None) -> bool:
    """One server span per request (excluding probes and scrapes); True when the app was instrumented.

    Instruments when tracing is enabled, or when a ``tracer_provider`` is passed (tests: every
    request is traced, no sampling gate). The span is :class:`ServerSpanMiddleware`'s, behind the
    :class:`SamplingGate`; the app is marked the way OpenTelemetry's instrumentors mark theirs.
    """
    if tracer_provider is None and not telemetry_enabled():
        return False
    # A proxy tracer until the provider is installed after fork: building the app first is fine.
    tracer = trace.get_tracer("panorama.core.telemetry", tracer_provider=tracer_provider)
    build = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        plain = build()  # ServerErrorMiddleware(the app's middleware(the router))
        traced = ServerSpanMiddleware(plain, tracer)
        sampler = getattr(_provider, "sampler", None)
        if tracer_provider is not None or not isinstance(sampler, GateSampler):
            return traced  # a test's provider: every request is recorded
        return SamplingGate(traced, plain, sampler.inner)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app._is_instrumented_by_opentelemetry = True  # type: ignore[attr-defined]
    return True


class ServerSpanMiddleware:
    """The SERVER span of a recorded request: the parent from ``traceparent``, a few ``http.*``
    attributes named as OpenTelemetry's ASGI instrumentation names them (``_request_attributes``),
    ``http.route`` and the span name ``"GET /users/{user_id}"`` once the router has matched, the
    status, and an exception event.

    Measured reason (docs/observability.md): with every request recorded, the contrib ASGI
    middleware was the largest piece of the tracing cost: it matched every route a second time to
    name the span (``_get_default_span_details`` walks the app's routes), collected attributes
    through several layers of helpers, and wrapped send and receive. This one reads the scope once,
    takes the parent the gate already extracted, and opens the span without the SDK's two nested
    context managers (:class:`current_span` does what ``start_as_current_span`` does).
    """

    def __init__(self, app: Any, tracer: Any) -> None:
        self.app = app
        self.tracer = tracer
        self.excluded = frozenset(EXCLUDED_PATHS)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.excluded:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        gated = _gated.get()
        if gated is None:  # a test's provider: no gate in front
            carrier = trace_carrier(scope)
            parent = propagate.extract(carrier)
        else:
            parent, carrier = gated
        span = self.tracer.start_span(
            method, context=parent, kind=trace.SpanKind.SERVER, attributes=_request_attributes(scope)
        )
        if SYNTHETIC_KEY in carrier:
            span.set_attribute("panorama.synthetic", True)

        async def send_noting_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                span.set_attribute("http.status_code", status)
                if status >= 500:
                    span.set_status(trace.Status(trace.StatusCode.ERROR))
            await send(message)

        with current_span(span, parent):
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.set_attribute("http.route", route)
                    span.update_name(f"{method} {route}")


class current_span:  # lower case: used like the SDK's function-style context managers
    """``with current_span(span, parent):`` makes ``span`` current (under ``parent``, else the current
    context), then restores the context and ends the span, recording an ``Exception`` as ``use_span``
    does (an ``exception`` event and ERROR status ``"Type: message"``). A plain class, not the SDK's
    ``start_as_current_span``, whose two nested generator context managers cost every recorded span."""

    __slots__ = ("parent", "span", "token")

    def __init__(self, span: Any, parent: otel_context.Context | None = None) -> None:
        self.span = span
        self.parent = parent

    def __enter__(self) -> Any:
        self.token = otel_context.attach(trace.set_span_in_context(self.span, self.parent))
        return self.span

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        otel_context.detach(self.token)
        if isinstance(error, Exception) and self.span.is_recording():
            self.span.record_exception(error)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.span.end()


def _request_attributes(scope: dict[str, Any]) -> dict[str, Any]:
    """The request's attributes, by the names OpenTelemetry's ASGI instrumentation uses: the method,
    the path (``http.target``) and the caller (``net.peer.ip``); ``http.route`` and
    ``http.status_code`` follow. The rest of what that instrumentation records (scheme, host,
    server name and port, flavor, full URL, user agent, peer port) is left out: every attribute
    costs each recorded span about 2 µs to set and 2.5 µs to encode for export (measured: 13
    attributes 47 µs of OTLP encoding per span, 4 attributes 25 µs), and those say nothing a
    trace of this suite is read for."""
    attributes: dict[str, Any] = {"http.method": scope["method"], "http.target": scope.get("path", "")}
    client = scope.get("client")
    if client:
        attributes["net.peer.ip"] = client[0]
    return attributes


# --- the sampling gate: an unsampled request skips the instrumentation it would throw away.

# Set by the gate for the request it let through to the instrumentation: the parent context it
# extracted (the middleware does not extract it again), and the trace headers it read. The root
# sampler must agree with the decision the gate already made (with a trace id of its own).
_gated: ContextVar[tuple[otel_context.Context, dict[str, str]] | None] = ContextVar("panorama_gated", default=None)


class GateSampler:
    """The configured sampler (``OTEL_TRACES_SAMPLER``), except that a root span the gate already
    sampled is sampled: the gate decided with a trace id of its own, the SDK draws another."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> Any:
        if _gated.get() is not None and not trace.get_current_span(parent_context).get_span_context().is_valid:
            from opentelemetry.sdk.trace.sampling import ALWAYS_ON

            return ALWAYS_ON.should_sample(parent_context, trace_id, name, *args, **kwargs)
        return self.inner.should_sample(parent_context, trace_id, name, *args, **kwargs)

    def get_description(self) -> str:
        return f"GateSampler{{{self.inner.get_description()}}}"


SYNTHETIC_HEADER = b"x-panorama-synthetic"
SYNTHETIC_KEY = SYNTHETIC_HEADER.decode()


def trace_carrier(scope: Mapping[str, Any], propagation: _Propagation | None = None) -> dict[str, str]:
    """The headers the configured propagators read (``traceparent``, ``tracestate``, ``baggage`` by
    default; ``OTEL_PROPAGATORS`` may name others) and the load-test marker, in one pass over the
    request's headers, as a carrier for ``propagate.extract``. Repeated headers are joined with a
    comma, as HTTP allows for list-valued fields. ``propagation``: the global propagator's, when the
    caller already has it."""
    wanted = (propagation or _propagation()).wanted
    carrier: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            key = wanted[name]
            text = value.decode("latin-1")
            carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
    return carrier


class _Propagation(NamedTuple):
    """What the request path needs to know of one global propagator, worked out once for it."""

    textmap: object
    wanted: dict[bytes, str]  # header names to collect -> carrier keys
    default: bool  # the SDK's default: W3C trace context, then baggage (the gate's short path)


_propagation_seen: _Propagation | None = None


def _propagation() -> _Propagation:
    """The global propagator's :class:`_Propagation` (worked out again if it is replaced)."""
    global _propagation_seen
    textmap = propagate.get_global_textmap()
    if _propagation_seen is None or _propagation_seen.textmap is not textmap:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.propagators.composite import CompositePropagator

        names = {field.lower() for field in textmap.fields} | {SYNTHETIC_KEY}
        kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
        default = type(textmap) is CompositePropagator and kinds == [
            TraceContextTextMapPropagator,
            W3CBaggagePropagator,
        ]
        _propagation_seen = _Propagation(textmap, {name.encode("latin-1"): name for name in names}, default)
    return _propagation_seen


class SamplingGate:
    """Outermost ASGI app: decides up front, with the parent-based sampler, whether a request is
    sampled. Sampled requests go through the OpenTelemetry middleware as before (every span and
    attribute); unsampled ones, and probes, go straight to the app below it, under a non-recording
    span that carries the trace id with ``sampled=0`` so downstream calls propagate the decision.

    Measured reason (docs/observability.md): the ASGI middleware collected the request's
    attributes, wrapped send and receive and ran the span machinery for every request, sampled or
    not; at 10 % sampling the gateway paid most of the always-on cost. Under the SDK's default
    propagators and sampler, an unsampled request without baggage or trace state is decided without
    extracting its caller's context first (the short path, below).
    """

    def __init__(self, traced: Any, plain: Any, sampler: Any) -> None:
        self.traced = traced
        # `app`: the usual name of the wrapped ASGI app, for tools that walk a middleware stack.
        self.app = traced
        self.plain = plain
        self.sampler = sampler
        self.excluded = frozenset(EXCLUDED_PATHS)
        self.root_sampled = _root_decision(sampler)
        self.children_dropped = _children_dropped(sampler)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.traced(scope, receive, send)
            return
        if scope.get("path") in self.excluded:
            # No span for a probe or a scrape, nor for what it does: readiness pings Redis and
            # queries the database, which the instrumentations would record as root spans.
            token = otel_context.attach(_SUPPRESSED)
            try:
                await self.plain(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        propagation = _propagation()  # once per request: the carrier's headers and the short path's condition
        carrier = trace_carrier(scope, propagation)
        if self.root_sampled is not None and propagation.default and carrier.keys() <= _PLAIN_KEYS:
            decided = _short_decision(carrier, self.root_sampled)
            if decided is not None:
                trace_id, sampled = decided
                if sampled:  # a root the ratio chose: no caller's context to extract
                    await self._traced(otel_context.Context(), carrier, scope, receive, send)
                else:
                    await self._unsampled(trace_id, scope, receive, send)
                return
        parent = propagate.extract(carrier)
        parent_span = trace.get_current_span(parent).get_span_context()
        trace_id = parent_span.trace_id if parent_span.is_valid else random.getrandbits(128)
        decision = self.sampler.should_sample(parent, trace_id, "gate")
        if decision.decision.is_sampled():
            await self._traced(parent, carrier, scope, receive, send)
            return
        trace_state = parent_span.trace_state if parent_span.is_valid else None
        await self._unsampled(trace_id, scope, receive, send, trace_state=trace_state, parent=parent)

    async def _traced(
        self, parent: otel_context.Context, carrier: dict[str, str], scope: dict[str, Any], receive: Any, send: Any
    ) -> None:
        token = _gated.set((parent, carrier))
        try:
            await self.traced(scope, receive, send)
        finally:
            _gated.reset(token)

    async def _unsampled(
        self,
        trace_id: int,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        *,
        trace_state: trace.TraceState | None = None,
        parent: otel_context.Context | None = None,
    ) -> None:
        """The app below, under a non-recording span of the request's own: the trace id (and trace
        state) of its caller or of its root, a new span id, ``sampled=0``, in the caller's context
        (its baggage) or, on the short path, an empty one.

        Where the sampler drops every child of an unsampled span (``ParentBased``'s default), that
        context also suppresses OpenTelemetry's instrumentations (the key their wrappers check,
        ``is_instrumentation_enabled``): the Redis and SQLAlchemy instrumentors otherwise format the
        command, name a span and run the SDK's span machinery around every command of the request,
        only for the sampler to drop it. Measured reason (docs/observability.md, "On `make up`'s
        settings"): a ``redis.asyncio`` GET under an unsampled request cost 87.8 µs of CPU
        instrumented, 73.9 uninstrumented, 73.2 suppressed. Propagation is untouched:
        ``traceparent`` (sampled=0) still goes out on upstream calls and Celery messages, whose
        instrumentation does not check the key."""
        span = trace.NonRecordingSpan(
            trace.SpanContext(trace_id, random.getrandbits(64), False, _NOT_SAMPLED, trace_state)
        )
        context = parent if parent is not None else otel_context.Context()
        if self.children_dropped:
            context = _suppressing(context)
        token = otel_context.attach(trace.set_span_in_context(span, context))
        try:
            await self.plain(scope, receive, send)
        finally:
            otel_context.detach(token)


# --- the gate's short path for unsampled requests under the default configuration.
#
# Measured reason (docs/observability.md, "What an unsampled request still paid"): with a sampler
# that records nothing (ratio 0), io's worker spent 37-41 µs more per request than untraced, the
# gateway's 33-50 µs; in one process io's gate took 16 µs of it in propagate.extract (10 µs: the
# composite propagator, the baggage propagator, the caller's SpanContext and its context) and the
# sampler's decision (4 µs). Under W3C trace context and baggage, the SDK's default propagators,
# and a parent-based sampler that drops what an unsampled caller dropped (its default), a request
# with neither baggage nor trace state needs neither: its decision is in the traceparent's flags
# (a caller's) or in the root sampler's ratio (a root). Everything else takes the general path.

_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)


def _suppressing(context: otel_context.Context) -> otel_context.Context:
    """``context`` with OpenTelemetry's instrumentations switched off (``is_instrumentation_enabled``)."""
    return otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True, context)


_SUPPRESSED = _suppressing(otel_context.Context())
_PLAIN_KEYS = frozenset({"traceparent", SYNTHETIC_KEY})


def _root_decision(sampler: Any) -> Any:
    """``trace_id -> sampled?`` of a root request, when ``sampler`` is ``ParentBased`` with the
    delegates the short path assumes for a caller's decision; ``None`` otherwise (the general path
    asks the sampler itself)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

    def plain(candidate: Any, kind: type) -> bool:  # that class's own decision, not an override
        return isinstance(candidate, kind) and type(candidate).should_sample is kind.should_sample

    if not plain(sampler, ParentBased) or getattr(sampler, "_remote_parent_not_sampled", None) is not ALWAYS_OFF:
        return None
    root = getattr(sampler, "_root", None)
    if root is ALWAYS_ON:
        return lambda trace_id: True
    if root is ALWAYS_OFF:
        return lambda trace_id: False
    if plain(root, TraceIdRatioBased):
        limit, bound = TraceIdRatioBased.TRACE_ID_LIMIT, root.bound
        return lambda trace_id: trace_id & limit < bound
    return None


def _children_dropped(sampler: Any) -> bool:
    """True when ``sampler`` (the configured one, below the :class:`GateSampler`) drops every span
    whose local parent is unsampled, so an instrumentation under an unsampled request can only
    make spans that are thrown away: ``ParentBased``'s own decision with its default delegate."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    return (
        isinstance(sampler, ParentBased)
        and type(sampler).should_sample is ParentBased.should_sample
        and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
    )


_TRACEPARENT = TraceContextTextMapPropagator._TRACEPARENT_HEADER_FORMAT_RE


def _short_decision(carrier: Mapping[str, str], root_sampled: Any) -> tuple[int, bool] | None:
    """``(trace id, sampled?)`` of a request whose caller did not sample it or that has no caller;
    ``None`` for the general path (a caller that sampled it, or a traceparent to judge there).
    A traceparent is read as the W3C propagator reads it (its own pattern and rules); one it would
    ignore is left to it, which makes the request a root."""
    header = carrier.get("traceparent")
    if header is None:
        trace_id = random.getrandbits(128)
        return trace_id, root_sampled(trace_id)
    match = _TRACEPARENT.search(header)
    if match is None:
        return None
    version, trace_hex, span_hex, flags = match.group(1, 2, 3, 4)
    if version == "ff" or (version == "00" and match.group(5)):
        return None
    trace_id = int(trace_hex, 16)
    if trace_id == 0 or int(span_hex, 16) == 0 or int(flags, 16) & trace.TraceFlags.SAMPLED:
        return None
    return trace_id, False


def instrument_aiohttp_client() -> bool:
    """A client span per outbound aiohttp request, with ``traceparent`` injected."""
    if not telemetry_enabled():
        return False
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    _instrument_once(AioHttpClientInstrumentor())
    return True


def instrument_sqlalchemy(*engines: Any) -> bool:
    """A span per SQL statement on these engines (``AsyncEngine`` or ``Engine``).

    Call it once per process with every engine: the instrumentor is a singleton that ignores a
    second call.
    """
    if not telemetry_enabled() or not engines:
        return False
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    sync_engines = [getattr(engine, "sync_engine", engine) for engine in engines]
    _instrument_once(SQLAlchemyInstrumentor(), engines=sync_engines)
    return True


def instrument_redis() -> bool:
    """A span per Redis command (``redis`` and ``redis.asyncio`` clients)."""
    if not telemetry_enabled():
        return False
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    _instrument_once(RedisInstrumentor())
    return True


def instrument_celery() -> bool:
    """Spans for Celery publish (producer) and run (worker), linked through the message headers.

    Call it in the publishing process and, in the worker, from ``worker_process_init``.
    """
    if not telemetry_enabled():
        return False
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    _instrument_once(CeleryInstrumentor())
    return True


def _instrument_once(instrumentor: Any, **kwargs: Any) -> None:
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(**kwargs)


# --- context across process boundaries (process-pool children, anything not carried by HTTP).


def inject_context() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``), picklable."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a parent sent with :func:`inject_context`, to start a child span under it."""
    return propagate.extract(dict(carrier or {}))


def attach_context(carrier: Mapping[str, str] | None) -> object:
    """Make the carried context current; pass the token to :func:`detach_context` when done."""
    return otel_context.attach(extract_context(carrier))


def detach_context(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]
