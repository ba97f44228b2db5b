import pytest
from fastapi.testclient import TestClient

from panorama.compute.app import create_app
from panorama.compute.settings import ComputeSettings


@pytest.mark.parametrize("n", [0, 1, 10, 65_537, 1_000_000])
def test_process_pool_returns_sum_of_range(client: TestClient, n: int) -> None:
    response = client.post("/compute", json={"n": n})
    assert response.status_code == 200
    assert response.json() == {"result": sum(range(n))}


def test_thread_pool_returns_the_same_result(client: TestClient) -> None:
    response = client.post("/compute", params={"pool": "thread"}, json={"n": 123_457})
    assert response.status_code == 200
    assert response.json() == {"result": sum(range(123_457))}
    assert client.get("/debug/pool").json()["thread"]["completed"] >= 1


def test_negative_n_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/compute", json={"n": -1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["body.n"]


def test_n_above_the_configured_maximum_is_422_naming_the_field(client: TestClient) -> None:
    max_n = client.app.state.settings.max_n
    response = client.post("/compute", json={"n": max_n + 1})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "invalid request: body.n"
    assert str(max_n) in body["errors"][0]["message"]
    assert client.post("/compute", json={"n": 10**30}).status_code == 422


@pytest.mark.parametrize("payload", [{"n": "5"}, {"n": 1.5}, {"n": True}, {"n": None}, {"n": [5]}])
def test_wrong_types_are_422_naming_the_field(client: TestClient, payload: dict) -> None:
    response = client.post("/compute", json=payload)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.n"


def test_missing_and_unknown_fields_are_422(client: TestClient) -> None:
    assert client.post("/compute", json={}).json()["errors"][0]["field"] == "body.n"
    response = client.post("/compute", json={"n": 1, "m": 2})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.m"


def test_unknown_pool_is_422_naming_the_query_parameter(client: TestClient) -> None:
    response = client.post("/compute", params={"pool": "inline"}, json={"n": 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.pool"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "7200"])
def test_bad_deadline_header_is_422_naming_the_header(client: TestClient, value: str) -> None:
    response = client.post("/compute", json={"n": 1}, headers={"X-Request-Timeout": value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.X-Request-Timeout"


def test_inline_antipattern_is_not_served_by_default(client: TestClient) -> None:
    assert client.post("/demo/compute-inline", json={"n": 10}).status_code == 404


def test_inline_antipattern_is_served_when_demos_are_on() -> None:
    settings = ComputeSettings(cpu_limit=1, web_concurrency=1, demo_antipatterns=True, log_level="WARNING")
    with TestClient(create_app(settings)) as client:
        response = client.post("/demo/compute-inline", json={"n": 1000})
        assert response.json() == {"result": sum(range(1000))}
        assert client.post("/demo/compute-inline", json={"n": -5}).status_code == 422


def test_spawn_start_method_serves_the_same_results() -> None:
    settings = ComputeSettings(cpu_limit=1, web_concurrency=1, start_method="spawn", log_level="WARNING")
    with TestClient(create_app(settings)) as client:
        assert client.post("/compute", json={"n": 5000}).json() == {"result": sum(range(5000))}
        assert client.get("/debug/pool").json()["start_method"] == "spawn"
