import pytest
from fastapi.testclient import TestClient

from panorama.core.service import create_service_app
from panorama.core.settings import PanoramaSettings

TOKEN = "internal-token-0123456789abcdef"


def client(**settings: object) -> TestClient:
    return TestClient(create_service_app(service="t", settings=PanoramaSettings(**settings)))


def test_without_a_token_configured_everything_is_open() -> None:
    with client() as c:
        assert c.get("/debug/plan").status_code == 200


def test_a_caller_without_the_token_is_refused_403() -> None:
    with client(internal_token=TOKEN) as c:
        response = c.get("/debug/plan")
        wrong = c.get("/debug/plan", headers={"X-Panorama-Internal-Token": TOKEN[:-1] + "x"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 403


def test_the_right_token_passes() -> None:
    with client(internal_token=TOKEN) as c:
        assert c.get("/debug/plan", headers={"X-Panorama-Internal-Token": TOKEN}).status_code == 200


def test_probes_and_metrics_stay_open_for_the_kubelet_and_prometheus() -> None:
    with client(internal_token=TOKEN) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert c.get("/metrics").status_code == 200


@pytest.mark.parametrize("token", ["changeme", "short"])
def test_weak_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValueError, match="PANORAMA_INTERNAL_TOKEN"):
        PanoramaSettings(internal_token=token)
