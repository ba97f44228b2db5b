import asyncio
import time

from fastapi.testclient import TestClient

from panorama.core.service import create_service_app
from panorama.core.settings import PanoramaSettings


async def ok() -> None:
    return None


async def hangs() -> None:
    await asyncio.sleep(60)


async def fails() -> None:
    raise ConnectionRefusedError("connection refused")


def app_with(checks: dict) -> TestClient:
    settings = PanoramaSettings(readiness_timeout=0.3)
    return TestClient(create_service_app(service="t", settings=settings, readiness_checks=lambda app: checks))


def test_liveness_does_not_consult_dependencies() -> None:
    with app_with({"db": hangs}) as client:
        started = time.monotonic()
        assert client.get("/healthz").json() == {"status": "ok"}
        assert time.monotonic() - started < 0.3


def test_ready_when_every_check_passes() -> None:
    with app_with({"db": ok, "cache": ok}) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_hanging_dependency_answers_503_within_the_timeout() -> None:
    with app_with({"db": ok, "cache": hangs}) as client:
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["cache"]["error"] == "timed out after 0.3s"
    assert body["checks"]["db"]["ok"] is True
    assert elapsed < 2.0


def test_failing_dependency_reports_its_error() -> None:
    with app_with({"db": fails}) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert "connection refused" in response.json()["checks"]["db"]["error"]


def test_debug_loop_reports_lag_and_thread_tokens() -> None:
    settings = PanoramaSettings(sync_pool_size=7)
    with TestClient(create_service_app(service="t", settings=settings)) as client:
        body = client.get("/debug/loop").json()
    assert body["thread_tokens"] == 7
    assert body["samples"] >= 0
