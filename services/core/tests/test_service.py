"""The shared app factory: tracing middleware only with an endpoint, /metrics, the asyncio debug switch."""

from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from panorama.core.service import create_service_app
from panorama.core.settings import PanoramaSettings

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED")


pytestmark = pytest.mark.usefixtures("restore_root_logger")  # conftest.py


def instrumented(app: FastAPI) -> bool:
    return bool(getattr(app, "_is_instrumented_by_opentelemetry", False))


def test_the_tracing_middleware_is_added_only_when_an_endpoint_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)
    assert not instrumented(create_service_app(service="plain", settings=PanoramaSettings()))
    # Building the app reads the variable and nothing else: no exporter, no connection yet.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert instrumented(create_service_app(service="traced", settings=PanoramaSettings()))
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not instrumented(create_service_app(service="disabled", settings=PanoramaSettings()))


def test_metrics_is_served_but_kept_out_of_the_api_schema() -> None:
    app = create_service_app(service="plain", settings=PanoramaSettings(log_json=False))
    with TestClient(app) as client:
        response = client.get("/metrics")
        schema = client.get("/openapi.json").json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "panorama_http_request_duration_seconds" in response.text
    assert "/metrics" not in schema["paths"]


def slow_app(settings: PanoramaSettings) -> FastAPI:
    app = create_service_app(service="debuggable", settings=settings)

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        time.sleep(0.08)  # noqa: ASYNC251 - a slow callback for asyncio's debug mode to report
        return {"debug": asyncio.get_running_loop().get_debug()}

    return app


def test_asyncio_debug_reports_slow_callbacks_in_the_json_log_stream(capsys: pytest.CaptureFixture[str]) -> None:
    settings = PanoramaSettings(asyncio_debug=True, slow_callback_ms=50, blocking_threshold_ms=0)
    with TestClient(slow_app(settings)) as client:
        assert client.get("/slow").json() == {"debug": True}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    slow = [line for line in lines if line["logger"] == "asyncio" and "took" in str(line["message"])]
    assert slow, lines
    assert slow[0]["service"] == "debuggable"
    assert slow[0]["level"] == "WARNING"
    assert "trace_id" in slow[0]


def test_asyncio_debug_is_off_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(slow_app(PanoramaSettings(blocking_threshold_ms=0))) as client:
        assert client.get("/slow").json() == {"debug": False}
    assert '"logger": "asyncio"' not in capsys.readouterr().out


def test_the_blocking_detector_can_be_switched_off() -> None:
    app = slow_app(PanoramaSettings(blocking_threshold_ms=0, log_json=False))
    with TestClient(app) as client:
        assert client.get("/debug/blocking").json() == []
        assert app.state.blocking is None


def test_once_started_the_heap_is_frozen_and_young_collections_are_rarer() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        gc.set_threshold(700, *before[1:])
        with TestClient(create_service_app(service="plain", settings=PanoramaSettings(gc_threshold=0))):
            assert gc.get_threshold()[0] == 700  # 0: Python's defaults, nothing frozen
            assert gc.get_freeze_count() == 0
        with TestClient(create_service_app(service="plain", settings=PanoramaSettings(gc_threshold=12_345))):
            assert gc.get_threshold() == (12_345, *before[1:])
            assert gc.get_freeze_count() > 10_000  # the app, FastAPI, pydantic: out of every collection
    finally:
        gc.set_threshold(*before)
