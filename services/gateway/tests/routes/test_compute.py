"""Gateway /compute and /ml-inference against a real gunicorn compute (two pool children)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from panorama.core.contract import MAX_ROWS
from panorama.gateway.app import create_app
from panorama.gateway.settings import GatewaySettings
from panorama.gateway.upstream import downstream_timeout
from panorama.testing import free_port, gunicorn_command, running

API_KEY = "test-key-compute-0123456789"
AUTH = {"X-API-Key": API_KEY}
COMPUTE_MAX_N = 200_000_000
FEATURES = 32

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compute_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("gateway-compute")
    port = free_port()
    env = {
        "WEB_CONCURRENCY": "1",
        "PANORAMA_CPU_LIMIT": "2",
        "PANORAMA_MAX_N": str(COMPUTE_MAX_N),
        "PANORAMA_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"
    with running(gunicorn_command("panorama.compute.app:create_app()", port), env, tmp / "compute.log", url=url):
        yield url


def gateway(compute_url: str, **overrides: object) -> TestClient:
    settings = GatewaySettings(api_keys=API_KEY, compute_url=compute_url, log_level="WARNING", **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(compute_url: str) -> Iterator[TestClient]:
    with gateway(compute_url) as test_client:
        yield test_client


def test_compute_needs_an_api_key(client: TestClient) -> None:
    response = client.post("/compute", json={"n": 10})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_compute_relays_the_result(client: TestClient) -> None:
    response = client.post("/compute", json={"n": 100_000}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"result": sum(range(100_000))}


def test_bearer_token_is_accepted(client: TestClient) -> None:
    response = client.post("/compute", json={"n": 5}, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.json() == {"result": 10}


def test_wrong_type_is_rejected_at_the_gateway_naming_the_field(client: TestClient) -> None:
    response = client.post("/compute", json={"n": "10"}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.n"


def test_n_above_computes_maximum_is_compute_s_422_relayed(client: TestClient) -> None:
    response = client.post("/compute", json={"n": COMPUTE_MAX_N + 1}, headers=AUTH)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"][0]["field"] == "body.n"
    assert str(COMPUTE_MAX_N) in body["errors"][0]["message"]


def test_ml_inference_relays_probabilities(client: TestClient) -> None:
    response = client.post("/ml-inference", json={"inputs": [[0.25] * FEATURES, [-1.0] * FEATURES]}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert len(body["outputs"]) == len(body["labels"]) == 2
    assert all(abs(sum(row) - 1.0) < 1e-9 for row in body["outputs"])


def test_ml_inference_wrong_width_is_compute_s_422_naming_the_row(client: TestClient) -> None:
    response = client.post("/ml-inference", json={"inputs": [[0.0] * FEATURES, [0.0] * 3]}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.inputs.1"


def test_oversize_batch_is_refused_at_the_gateway(client: TestClient) -> None:
    response = client.post("/ml-inference", json={"inputs": [[0.0] * FEATURES] * (MAX_ROWS + 1)}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.inputs"


def test_a_body_over_the_json_size_limit_is_413_before_it_is_parsed(client: TestClient) -> None:
    # 10,000 rows is about 1.6 MB of JSON: over PANORAMA_MAX_JSON_BYTES (1 MiB), refused unread.
    response = client.post("/ml-inference", json={"inputs": [[0.0] * FEATURES] * 10_000}, headers=AUTH)
    assert response.status_code == 413


def test_budget_runs_out_as_compute_s_504_not_a_blind_gateway_timeout(compute_url: str) -> None:
    with gateway(compute_url, timeout_compute=1.0) as client:
        response = client.post("/compute", json={"n": COMPUTE_MAX_N}, headers=AUTH)
    assert response.status_code == 504
    # Compute's own answer (it was told the budget), so it also stopped the task.
    assert "compute did not finish within" in response.json()["detail"]
    assert downstream_timeout(1.0) < 1.0


def test_compute_down_is_503_with_retry_after() -> None:
    with gateway(f"http://127.0.0.1:{free_port()}") as client:
        response = client.post("/compute", json={"n": 10}, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
