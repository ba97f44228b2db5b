"""Logs: one JSON line per record, each with the trace and span ids of the span it was logged in."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from panorama.core.logging import configure_logging

pytestmark = pytest.mark.usefixtures("restore_root_logger")  # conftest.py


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_json_line_carries_the_current_trace_and_span_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("logsvc", "INFO", json=True)
    log = logging.getLogger("panorama.test")
    tracer = TracerProvider().get_tracer("test")
    log.info("before any span")
    with tracer.start_as_current_span("outer") as outer:
        log.info("inside the outer span")
        with tracer.start_as_current_span("inner") as inner:
            logging.getLogger("uvicorn.access").warning("from a library logger")
    outside, in_outer, in_inner = json_lines(capsys.readouterr().out)

    assert outside["message"] == "before any span"
    assert outside["trace_id"] is None
    assert outside["span_id"] is None
    assert outside["service"] == "logsvc"
    outer_context, inner_context = outer.get_span_context(), inner.get_span_context()
    assert in_outer["trace_id"] == format(outer_context.trace_id, "032x")
    assert in_outer["span_id"] == format(outer_context.span_id, "016x")
    assert in_inner["logger"] == "uvicorn.access"
    assert in_inner["trace_id"] == in_outer["trace_id"]
    assert in_inner["span_id"] == format(inner_context.span_id, "016x")


def test_ids_passed_explicitly_win_over_the_current_span(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("logsvc", "INFO", json=True)
    with TracerProvider().get_tracer("test").start_as_current_span("watchdog's own"):
        logging.getLogger("panorama.test").warning("report", extra={"trace_id": "ab" * 16, "span_id": "cd" * 8})
    (line,) = json_lines(capsys.readouterr().out)
    assert (line["trace_id"], line["span_id"]) == ("ab" * 16, "cd" * 8)


def test_plain_text_lines_show_the_trace_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("logsvc", "INFO", json=False)
    with TracerProvider().get_tracer("test").start_as_current_span("s") as span:
        logging.getLogger("panorama.test").info("hello")
    out = capsys.readouterr().out
    assert f"[trace={format(span.get_span_context().trace_id, '032x')}]: hello" in out
