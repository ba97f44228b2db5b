"""RabbitMQ as the gateway's broker: jobs published with confirms, /readyz checks it, a dead one is 503."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from panorama.core.errors import Problem
from panorama.gateway.app import create_app
from panorama.gateway.jobs import VideoJobs
from panorama.gateway.probe import VideoInfo
from panorama.gateway.settings import GatewaySettings
from panorama.testing import free_port

KEY = "broker-tests-key-0123456789"


def settings(tmp_path: Path, broker_url: str, redis_url: str) -> GatewaySettings:
    return GatewaySettings(
        api_keys=KEY, broker_url=broker_url, redis_url=redis_url, storage_dir=tmp_path / "storage",
        state_dir=tmp_path / "state", io_url=f"http://127.0.0.1:{free_port()}",
        compute_url=f"http://127.0.0.1:{free_port()}", log_json=False, cpu_limit=1.0,
    )  # fmt: skip


def queued(url: str) -> int:
    vhost = url.rsplit("/", 1)[1]
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", vhost, "name", "messages"], capture_output=True, text=True, check=True
    ).stdout
    counts = [line.split() for line in out.splitlines() if line.startswith("video")]
    return int(counts[0][1]) if counts else 0


def submit(jobs: VideoJobs, tmp_path: Path) -> str:
    job_id = uuid.uuid4().hex
    upload = tmp_path / f"{job_id}.part"
    upload.write_bytes(b"video")
    jobs.submit(job_id, upload, VideoInfo(format="mp4", mime_type="video/mp4", duration=1.0, width=64, height=64), 5)
    return job_id


def test_a_job_is_published_to_rabbitmq_and_readiness_checks_the_broker(
    tmp_path: Path, rabbitmq_vhost: str, redis_url: str
) -> None:
    jobs = VideoJobs(settings(tmp_path, rabbitmq_vhost, redis_url))
    jobs.prepare()
    try:
        # The worker declares the queue when it starts consuming; here the publisher's own declare does.
        job_id = submit(jobs, tmp_path)
        assert jobs.known(job_id)
        assert queued(rabbitmq_vhost) == 1
    finally:
        jobs.close()


async def test_readyz_reports_the_broker(tmp_path: Path, rabbitmq_vhost: str, redis_url: str) -> None:
    for url, ok in ((rabbitmq_vhost, True), (f"amqp://guest:guest@127.0.0.1:{free_port()}/", False)):
        app = create_app(settings(tmp_path, url, redis_url))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                started = time.monotonic()
                checks = (await client.get("/readyz")).json()["checks"]
                assert checks["broker"] == {"ok": ok}
                assert time.monotonic() - started < 5


def test_a_dead_broker_is_503_quickly_and_keeps_no_upload(tmp_path: Path, redis_url: str) -> None:
    jobs = VideoJobs(settings(tmp_path, f"amqp://guest:guest@127.0.0.1:{free_port()}/", redis_url))
    jobs.prepare()
    try:
        started = time.monotonic()
        with pytest.raises(Problem) as raised:
            submit(jobs, tmp_path)
        assert raised.value.status == 503
        assert time.monotonic() - started < 10
        assert not list((tmp_path / "storage" / "uploads").iterdir())
    finally:
        jobs.close()
