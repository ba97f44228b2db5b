"""The child's span lands in the request's trace: W3C context carried into another process.

The real gunicorn compute runs with ``PANORAMA_COMPUTE_SPAN_FILE``: the worker and each pool
child export their finished spans as JSON lines (the SDK's own exporter), which is how a span
recorded in another process is read back here.
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from .conftest import ComputeServer

pytestmark = pytest.mark.slow


def spans_of(server: ComputeServer, trace_id: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = server.span_file.read_text().splitlines() if server.span_file.exists() else []
        spans = [s for s in map(json.loads, lines) if s["context"]["trace_id"] == "0x" + trace_id]
        # The request's server span ends last, after the response has been sent.
        complete = any(s["kind"] == "SpanKind.SERVER" for s in spans)
        if (complete and len(spans) >= count) or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def traced_post(server: ComputeServer, path: str, body: dict, **params: str) -> tuple[str, str, httpx.Response]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    response = httpx.post(server.url + path, json=body, params=params, headers=headers, timeout=30)
    return trace_id, parent_id, response


def by_name(spans: list[dict]) -> dict[str, dict]:
    return {span["name"]: span for span in spans}


def ancestors(span: dict, spans: list[dict]) -> list[dict]:
    """The span's parents up the trace, nearest first, as far as they were recorded here."""
    by_id = {s["context"]["span_id"]: s for s in spans}
    chain = []
    while span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        chain.append(span)
    return chain


def request_span_of(span: dict, spans: list[dict], parent_id: str) -> dict:
    """The request's server span above ``span``; the caller's traceparent is the parent of the chain."""
    chain = ancestors(span, spans)
    assert chain, f"nothing recorded above {span['name']}"
    assert chain[-1]["parent_id"] == "0x" + parent_id, "the chain does not lead to the caller's span"
    server = [s for s in chain if s["kind"] == "SpanKind.SERVER"]
    assert server, f"no request span above {span['name']}"
    return server[0]


def test_child_process_span_is_a_child_of_the_request_span(compute_server: ComputeServer) -> None:
    trace_id, parent_id, response = traced_post(compute_server, "/compute", {"n": 1000})
    assert response.json() == {"result": sum(range(1000))}
    recorded = spans_of(compute_server, trace_id, 3)
    spans = by_name(recorded)
    submit, child = spans["compute.submit"], spans["compute.sum_below"]
    assert child["parent_id"] == submit["context"]["span_id"]
    assert request_span_of(child, recorded, parent_id)["name"] == "POST /compute"
    assert child["attributes"]["compute.n"] == 1000
    # Recorded in a pool child, not in the web worker.
    assert child["attributes"]["process.pid"] in compute_server.pool()["pids"]


def test_inference_child_span_joins_the_trace(compute_server: ComputeServer) -> None:
    trace_id, parent_id, response = traced_post(compute_server, "/ml-inference", {"inputs": [[0.5] * 32]})
    assert response.status_code == 200
    recorded = spans_of(compute_server, trace_id, 3)
    spans = by_name(recorded)
    assert spans["compute.inference"]["parent_id"] == spans["compute.inference.submit"]["context"]["span_id"]
    assert request_span_of(spans["compute.inference"], recorded, parent_id)["name"] == "POST /ml-inference"
    assert spans["compute.inference"]["attributes"]["process.pid"] in compute_server.pool()["pids"]


def test_thread_pool_task_keeps_the_trace_through_the_copied_context(compute_server: ComputeServer) -> None:
    trace_id, parent_id, response = traced_post(compute_server, "/compute", {"n": 500}, pool="thread")
    assert response.json() == {"result": sum(range(500))}
    recorded = spans_of(compute_server, trace_id, 3)
    spans = by_name(recorded)
    child = spans["compute.sum_below"]
    assert child["parent_id"] == spans["compute.submit"]["context"]["span_id"]
    request_span_of(child, recorded, parent_id)
    assert child["attributes"]["process.pid"] not in compute_server.pool()["pids"]
