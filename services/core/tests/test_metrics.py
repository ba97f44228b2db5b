"""/metrics: request latency by route template and status, loop lag, thread tokens, the pool helpers."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from panorama.core.metrics import (
    add_sampler,
    observe_celery_task,
    observe_db_pool_wait,
    record_celery_queue_depth,
    record_db_pool,
    record_process_pool,
)
from panorama.core.service import create_service_app
from panorama.core.settings import PanoramaSettings
from panorama.core.telemetry import instrument_fastapi
from panorama.testing import free_port, gunicorn_command, running

HERE = Path(__file__).parent


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def app_with_routes() -> FastAPI:
    app = create_service_app(service="metered", settings=PanoramaSettings(log_json=False, sync_pool_size=7))

    @app.get("/widgets/{widget_id}")
    async def widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    return app


def test_requests_are_counted_by_route_template_and_status() -> None:
    app = app_with_routes()
    with TestClient(app) as client:
        before = client.get("/metrics").text
        for widget_id in (1, 2, 3):
            assert client.get(f"/widgets/{widget_id}").status_code == 200
        assert client.get("/widgets/not-a-number").status_code == 422
        assert client.get("/no/such/path/9f2c").status_code == 404
        after = client.get("/metrics").text

    def delta(**labels: str) -> float:
        name = "panorama_http_request_duration_seconds_count"
        return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)

    assert delta(method="GET", route="/widgets/{widget_id}", status="200") == 3
    assert delta(method="GET", route="/widgets/{widget_id}", status="422") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    assert "/no/such/path/9f2c" not in after  # raw paths never become series


def test_loop_lag_thread_tokens_and_registered_samplers_are_exposed() -> None:
    app = app_with_routes()

    async def async_sampler() -> None:
        await asyncio.sleep(0)
        record_db_pool("test-async", size=5, checked_out=2, overflow=1)

    def broken_sampler() -> None:
        raise RuntimeError("a broken sampler")

    add_sampler(app, broken_sampler)
    add_sampler(app, lambda: record_process_pool("test-pool", size=2, busy=1, queued=4))
    add_sampler(app, async_sampler)
    record_celery_queue_depth("test-queue", 12)
    observe_celery_task("test.transcode", "SUCCESS", 3.5)
    observe_db_pool_wait("test-async", 0.02)
    with TestClient(app) as client:
        # The sampler runs once at start, then every second; the first run is enough here.
        deadline = time.monotonic() + 5
        text = client.get("/metrics").text
        while value(text, "panorama_process_pool_tasks", pool="test-pool", state="queued") is None:
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
            text = client.get("/metrics").text
    assert value(text, "panorama_thread_limiter_tokens", state="total") == 7  # from the sizing plan
    assert value(text, "panorama_thread_limiter_tokens", state="in_use") is not None
    for stat in ("current", "p99", "max"):
        assert value(text, "panorama_event_loop_lag_seconds", stat=stat) is not None
    assert value(text, "panorama_process_pool_tasks", pool="test-pool", state="busy") == 1
    assert value(text, "panorama_db_pool_connections", pool="test-async", state="checked_out") == 2
    assert value(text, "panorama_db_pool_connections", pool="test-async", state="overflow") == 1
    assert value(text, "panorama_celery_queue_depth", queue="test-queue") == 12
    assert value(text, "panorama_celery_task_duration_seconds_count", task="test.transcode", state="SUCCESS") == 1
    assert value(text, "panorama_db_pool_wait_seconds_count", pool="test-async") == 1
    assert "panorama_event_loop_blocked_total" in text or "panorama_event_loop_blocked" in text


def test_openmetrics_scrapes_carry_the_requests_trace_id_as_an_exemplar() -> None:
    app = app_with_routes()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_fastapi(app, tracer_provider=provider)
    with TestClient(app) as client:
        assert client.get("/widgets/41").status_code == 200
        response = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    (server,) = [s for s in exporter.get_finished_spans() if s.name == "GET /widgets/{widget_id}"]
    trace_id = format(server.context.trace_id, "032x")
    lines = [line for line in response.text.splitlines() if f'trace_id="{trace_id}"' in line]
    assert lines
    assert all(line.startswith("panorama_http_request_duration_seconds_bucket") for line in lines)


@pytest.mark.slow
def test_multiprocess_mode_aggregates_every_gunicorn_worker(tmp_path: Path) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port, workers=2)
    cmd[3:3] = ["--pythonpath", str(HERE)]
    metrics_dir = tmp_path / "prom"
    (metrics_dir).mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # left by a previous run: must be cleared
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PANORAMA_LOG_JSON": "false"}
    env |= {k: "" for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") if k in os.environ}
    base = f"http://127.0.0.1:{port}"
    no_keepalive = httpx.Limits(max_keepalive_connections=0)  # a new connection each time: both workers get some
    with running(cmd, env, tmp_path / "gunicorn.log", url=base), httpx.Client(limits=no_keepalive) as client:
        sent = 0
        while len(list(metrics_dir.glob("histogram_*.db"))) < 2 or sent < 10:
            assert sent < 300, "one worker took every connection"
            assert client.get(base + "/debug/plan").status_code == 200
            sent += 1
        text = client.get(base + "/metrics").text
    name = "panorama_http_request_duration_seconds_count"
    counted = value(text, name, method="GET", route="/debug/plan", status="200")
    assert counted == sent  # whichever worker answered the scrape, it reports both workers' requests
    assert not (metrics_dir / "counter_999999.db").exists()
