"""The gateway's /metrics is not public: the gunicorn master serves it on its own port, for all workers.

And its /readyz says ready or not, never why (no error classes, hosts or paths).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from panorama.testing import free_port, gunicorn_command, running

API_KEY = "metrics-port-key-0123456789"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("metrics")
    port, metrics_port = free_port(), free_port()
    env = {
        "PANORAMA_STORAGE_DIR": str(root / "storage"),
        "PANORAMA_STATE_DIR": str(root / "state"),
        "PANORAMA_API_KEYS": API_KEY,
        "PANORAMA_CPU_LIMIT": "1",
        "PANORAMA_LOG_JSON": "false",
        "PANORAMA_METRICS_PORT": str(metrics_port),
        "PANORAMA_METRICS_ADDR": "127.0.0.1",
        # Nothing listens here: readiness fails, and must not say why.
        "PANORAMA_IO_URL": f"http://127.0.0.1:{free_port()}",
        "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{free_port()}",
    }
    cmd = gunicorn_command("panorama.gateway.app:create_app()", port, workers=2)
    with running(cmd, env, root / "gateway.log", url=f"http://127.0.0.1:{port}", ready="/healthz"):
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"


def test_metrics_are_not_on_the_public_port_but_on_the_masters_for_every_worker(gateway: tuple[str, str]) -> None:
    public, metrics = gateway
    assert httpx.get(f"{public}/metrics").status_code == 404
    with httpx.Client(base_url=public) as client:
        for _ in range(40):  # new connections: both workers get some
            client.get("/healthz", headers={"Connection": "close"})
    text = httpx.get(f"{metrics}/metrics").text
    counts = re.findall(
        r'panorama_http_request_duration_seconds_count\{method="GET",route="/healthz",status="200"\} (\S+)', text
    )
    assert counts, text[:2000]
    assert sum(float(c) for c in counts) >= 40


def test_readiness_says_not_ready_without_internals(gateway: tuple[str, str]) -> None:
    public, _ = gateway
    response = httpx.get(f"{public}/readyz", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["io"] == {"ok": False}
    assert "Error" not in response.text
    assert "127.0.0.1" not in response.text
