"""The video routes and /readyz when Redis (broker and result backend) or the storage volume fail.

Redis here is a redis-server of this test's own on a free port: it is frozen with SIGSTOP (accepts
connections, never answers: the worst case for a client) and killed, never the shared one.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from panorama.core.queue import StorageLayout
from panorama.testing import ThrowawayRedis, free_port, gunicorn_command, running

pytestmark = pytest.mark.slow

API_KEY = "video-outage-key-0123456789"
# Well under any kubelet or client patience, and above the 2 s connect + 5 s socket timeouts.
QUICK = 15.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    with ThrowawayRedis(tmp_path) as server:
        yield server


@pytest.fixture
def gateway(tmp_path: Path, own_redis: ThrowawayRedis) -> Iterator[tuple[str, Path]]:
    port = free_port()
    storage = tmp_path / "storage"
    env = {
        "PANORAMA_REDIS_URL": own_redis.url,
        "PANORAMA_STORAGE_DIR": str(storage),
        "PANORAMA_STATE_DIR": str(tmp_path / "state"),
        "PANORAMA_API_KEYS": API_KEY,
        "PANORAMA_CPU_LIMIT": "1",
        "PANORAMA_LOG_JSON": "false",
        # No io or compute here: their checks fail; these tests read the redis and storage checks.
        "PANORAMA_IO_URL": f"http://127.0.0.1:{free_port()}",
        "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{free_port()}",
    }
    url = f"http://127.0.0.1:{port}"
    with running(
        gunicorn_command("panorama.gateway.app:create_app()", port), env, tmp_path / "gw.log", url=url, ready="/healthz"
    ):
        yield url, storage


def readiness(url: str) -> tuple[int, dict, float]:
    start = time.monotonic()
    response = httpx.get(f"{url}/readyz", timeout=30)
    return response.status_code, response.json()["checks"], time.monotonic() - start


def test_task_status_is_503_quickly_when_redis_hangs(gateway: tuple[str, Path], own_redis: ThrowawayRedis) -> None:
    url, storage = gateway
    job_id = uuid.uuid4().hex
    # A job the gateway knows (its record exists) whose state only the result backend holds.
    (StorageLayout(storage).record(job_id)).write_text(json.dumps({"job_id": job_id}))
    with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=60) as client:
        assert client.get(f"/task/{job_id}").json()["status"] == "PENDING"
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        start = time.monotonic()
        response = client.get(f"/task/{job_id}")
        elapsed = time.monotonic() - start
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert elapsed < QUICK, f"503 took {elapsed:.1f}s"


def test_readiness_reports_redis_and_storage(gateway: tuple[str, Path], own_redis: ThrowawayRedis) -> None:
    url, storage = gateway
    _, checks, _ = readiness(url)
    assert checks["redis"]["ok"] is True, checks
    assert checks["storage"]["ok"] is True, checks

    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    status, checks, elapsed = readiness(url)
    assert status == 503
    assert checks["redis"]["ok"] is False
    assert elapsed < QUICK
    os.kill(own_redis.proc.pid, signal.SIGCONT)

    storage.rename(storage.with_name("storage-gone"))  # the volume is not mounted
    _, checks, _ = readiness(url)
    assert checks["storage"] == {"ok": False}  # the public /readyz never says why (the log does)
    assert checks["redis"]["ok"] is True, checks
