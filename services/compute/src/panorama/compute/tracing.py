"""Trace context across the process boundary: W3C ``traceparent`` carried with each pool task.

A pool child is another process, so the contextvar that holds the current span does not travel
with the pickled task. The parent injects the context into a plain dict passed as an argument;
the child extracts it and starts its span under the parent's. Exporter set-up belongs to the
shared telemetry code; :func:`export_to_file` is only a debug/test aid used when none is set up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.util.types import AttributeValue

TRACER_NAME = "panorama.compute"
Carrier = dict[str, str]


def request_context(headers: Mapping[str, str]) -> otel_context.Context:
    """The request's trace context: the active server span if instrumented, else the headers."""
    if trace.get_current_span().get_span_context().is_valid:
        return otel_context.get_current()
    return propagate.extract(headers)


@contextlib.contextmanager
def submit_span(name: str, parent: otel_context.Context, attributes: Mapping[str, AttributeValue]) -> Iterator[Carrier]:
    """A span around submit-and-wait; yields the carrier (``traceparent``...) to hand to the task."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, context=parent, attributes=attributes):
        carrier: Carrier = {}
        propagate.inject(carrier)
        yield carrier


@contextlib.contextmanager
def child_span(name: str, carrier: Mapping[str, str], attributes: Mapping[str, AttributeValue]) -> Iterator[None]:
    """The task's own span, a child of the span that submitted it (in this process or another)."""
    tracer = trace.get_tracer(TRACER_NAME)
    parent = propagate.extract(carrier)
    with tracer.start_as_current_span(name, context=parent, attributes={"process.pid": os.getpid(), **attributes}):
        yield


def export_to_file(path: Path, service_name: str) -> bool:
    """Append every finished span as one JSON line to ``path``, unless a provider is already set.

    SimpleSpanProcessor exports as each span ends: pool children leave through ``os._exit``, so a
    batching processor's buffer would be lost with them. Returns whether this set-up took effect.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return False
    # Line-buffered append: each span is one write() on an O_APPEND file, so processes don't interleave.
    out = path.open("a", buffering=1, encoding="utf-8")
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
