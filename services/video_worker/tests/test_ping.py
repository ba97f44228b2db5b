"""The worker process starts with the shared process model and answers a Celery ping."""

import sys
from pathlib import Path

from celery import Celery

from panorama.core.queue import celery_config
from panorama.testing import running


def test_worker_answers_a_celery_ping(redis_url: str, tmp_path: Path) -> None:
    env = {"PANORAMA_REDIS_URL": redis_url, "PANORAMA_STATE_DIR": str(tmp_path), "PANORAMA_CPU_LIMIT": "1"}
    cmd = [sys.executable, "-m", "celery", "-A", "panorama.video_worker.celery_app", "worker", "--hostname", "ping@%h"]
    client = Celery("ping-test")
    client.conf.update(celery_config(redis_url, tmp_path))
    with running(cmd, env, tmp_path / "worker.log"):
        replies: list = []
        for _ in range(60):
            replies = client.control.ping(timeout=0.5)
            if replies:
                break
        assert replies, "no worker answered the ping"
        ((name, answer),) = replies[0].items()
        assert name.startswith("ping@")
        assert answer == {"ok": "pong"}
