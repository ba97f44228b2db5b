"""Security edges end to end on real processes: keys never logged, the internal token enforced."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from panorama.core.internal import INTERNAL_TOKEN_HEADER
from panorama.io import migrate
from panorama.testing import ServiceProcess, free_port, gunicorn_command, running

pytestmark = pytest.mark.slow

API_KEY = "secret-key-never-logged-0123456789"
WRONG_KEY = "wrong-key-never-logged-9876543210"
TOKEN = "internal-token-never-logged-0123456789"


@dataclass
class Edge:
    gateway: str
    io: str
    gateway_process: ServiceProcess
    io_process: ServiceProcess


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[Edge]:
    """io behind the gateway, both verbose (DEBUG) so that anything logged at all is in the files."""
    migrate.upgrade(database_url)
    logs = Path(tmp_path_factory.mktemp("security"))
    io_port, gw_port = free_port(), free_port()
    common = {"PANORAMA_LOG_LEVEL": "DEBUG", "PANORAMA_CPU_LIMIT": "1", "PANORAMA_INTERNAL_TOKEN": TOKEN}
    io_env = {**common, "PANORAMA_DATABASE_URL": database_url, "PANORAMA_REDIS_URL": redis_url}
    gw_env = {
        **common, "PANORAMA_API_KEYS": API_KEY, "PANORAMA_IO_URL": f"http://127.0.0.1:{io_port}",
        "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{free_port()}", "PANORAMA_RATE_LIMIT": "5/second",
        "PANORAMA_STORAGE_DIR": str(logs / "storage"), "PANORAMA_STATE_DIR": str(logs / "state"),
    }  # fmt: skip
    io_url, gw_url = f"http://127.0.0.1:{io_port}", f"http://127.0.0.1:{gw_port}"
    with (
        running(gunicorn_command("panorama.io.app:create_app()", io_port), io_env, logs / "io.log", url=io_url) as io,
        running(
            gunicorn_command("panorama.gateway.app:create_app()", gw_port), gw_env, logs / "gw.log", url=gw_url,
            ready="/healthz",
        ) as gw,
    ):  # fmt: skip
        yield Edge(gw_url, io_url, gw, io)


def test_api_keys_and_the_internal_token_never_reach_the_logs(edge: Edge) -> None:
    with httpx.Client(base_url=edge.gateway, timeout=10) as client:
        statuses = [
            client.get("/users", headers={"X-API-Key": API_KEY}).status_code,
            client.get("/users", headers={"Authorization": f"Bearer {API_KEY}"}).status_code,
            client.get("/users", headers={"X-API-Key": WRONG_KEY}).status_code,
            client.get("/users", headers={"Authorization": f"Bearer {WRONG_KEY}"}).status_code,
            client.post("/users", headers={"X-API-Key": API_KEY}, json={"name": API_KEY}).status_code,
        ]
        statuses += [client.get("/users", headers={"X-API-Key": API_KEY}).status_code for _ in range(8)]
    assert statuses[:5] == [200, 200, 401, 401, 422]
    assert 429 in statuses[5:], statuses  # the rate limiter ran (and logged nothing of the key either)
    edge.gateway_process.stop()  # flushes every worker's output
    for process in (edge.gateway_process, edge.io_process):
        output = process.output
        assert "GET /users" in output or "starting" in output  # the log is really there
        for secret in (API_KEY, WRONG_KEY, TOKEN):
            assert secret not in output, f"{secret[:6]}... appears in {process.log_path.name}"


def test_io_refuses_direct_calls_but_serves_the_gateway(edge: Edge) -> None:
    if edge.gateway_process.proc is not None and edge.gateway_process.proc.poll() is not None:
        edge.gateway_process.start()
        edge.gateway_process.wait_ready("/healthz")
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{edge.gateway}/users", headers={"X-API-Key": API_KEY}).status_code == 200
        for headers in ({}, {INTERNAL_TOKEN_HEADER: "not-the-token"}, {INTERNAL_TOKEN_HEADER: TOKEN[:-1]}):
            direct = client.get(f"{edge.io}/users", headers=headers)
            assert direct.status_code == 403, direct.text
            assert direct.headers["content-type"] == "application/problem+json"
        assert client.get(f"{edge.io}/users", headers={INTERNAL_TOKEN_HEADER: TOKEN}).status_code == 200
        # Probes and metrics stay open to the kubelet and Prometheus.
        assert client.get(f"{edge.io}/healthz").status_code == 200
        assert client.get(f"{edge.io}/metrics").status_code == 200
