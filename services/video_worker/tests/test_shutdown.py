"""SIGTERM to the worker, as Kubernetes sends it: the running job finishes, a waiting job stays queued.

A real Celery worker (prefork, one child) on the session's Redis database transcodes a clip with
``-preset veryslow`` so the job is still running when SIGTERM reaches the worker's main process
(only the main process: Kubernetes signals PID 1, not the process group). Celery's warm shutdown
stops consuming and waits for the running task; with ``acks_late`` the job is acknowledged only
once it has completed, and a job no child had started stays in Redis for the next worker.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from panorama.core.queue import PROCESS_VIDEO_TASK, VIDEO_QUEUE, StorageLayout, celery_config
from panorama.testing import ServiceProcess, celery_worker_command, ffmpeg_running_for, wait_worker_ready
from panorama.testing import make_clip as clip
from panorama.video_worker.journal import Journal

pytestmark = pytest.mark.slow

CLIP_SECONDS = 4.0
WORKER_ENV = {
    "PANORAMA_VIDEO_PRESET": "veryslow",  # seconds of work for a 4 s clip: time to signal mid-job
    "PANORAMA_CELERY_CONCURRENCY": "1",
    "PANORAMA_CPU_LIMIT": "2",
    "PANORAMA_WORKER_METRICS_PORT": "0",  # other workers on this host may hold 9100
    "PANORAMA_LOG_JSON": "false",
    "PANORAMA_VIDEO_SOFT_TIME_LIMIT": "100",
    "PANORAMA_VIDEO_TIME_LIMIT": "110",
    "PANORAMA_VISIBILITY_TIMEOUT": "120",
}


make_clip = functools.partial(clip, seconds=CLIP_SECONDS, size="640x480", rate=30, audio=True)


def duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


@dataclass
class Rig:
    layout: StorageLayout
    env: dict[str, str]
    logs: Path
    client: Celery
    redis: redis.Redis
    started: list[ServiceProcess]

    def worker(self, name: str) -> ServiceProcess:
        worker = ServiceProcess(celery_worker_command(name), self.env, self.logs / f"{name}.log").start()
        self.started.append(worker)
        wait_worker_ready(worker, 30)
        return worker

    def submit(self, clip: Path) -> str:
        """What the gateway does: the upload under its job id, then the task published by name."""
        job_id = uuid.uuid4().hex
        self.layout.source(job_id).write_bytes(clip.read_bytes())
        self.client.send_task(PROCESS_VIDEO_TASK, args=[job_id], task_id=job_id)
        return job_id

    def events(self, job_id: str) -> list[str]:
        return [e["event"] for e in Journal(self.layout, job_id).events()]

    def state(self, job_id: str) -> str:
        # The backend's own read: an AsyncResult would subscribe to the result channel for nothing.
        return self.client.backend.get_task_meta(job_id)["status"]

    def wait_started(self, job_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.state(job_id) == "PROGRESS" and ffmpeg_running_for(job_id)):
            assert time.monotonic() < deadline, f"{job_id} not transcoding after {timeout}s: {self.events(job_id)}"
            time.sleep(0.1)

    def wait_done(self, job_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while Journal(self.layout, job_id).completion() is None:
            assert time.monotonic() < deadline, f"{job_id} not completed after {timeout}s: {self.events(job_id)}"
            time.sleep(0.2)

    def assert_completed_once(self, job_id: str, *, attempts: int) -> None:
        events = self.events(job_id)
        assert events.count("started") == attempts, events
        assert events.count("completed") == 1, events
        assert Journal(self.layout, job_id).completion()["video_id"] == job_id
        assert abs(duration(self.layout.output(job_id)) - CLIP_SECONDS) <= 0.1
        assert self.state(job_id) == "SUCCESS"

    def assert_drained(self) -> None:
        """Nothing queued, nothing unacknowledged, nothing half-written."""
        deadline = time.monotonic() + 10  # the late ack follows the completion record by a moment
        while (self.redis.llen(VIDEO_QUEUE) or self.redis.hlen("unacked")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (self.redis.llen(VIDEO_QUEUE), self.redis.hlen("unacked")) == (0, 0)
        assert list(self.layout.tmp.iterdir()) == []


@pytest.fixture
def rig(redis_url: str, tmp_path: Path) -> Iterator[Rig]:
    layout = StorageLayout(tmp_path / "storage")
    layout.ensure()
    env = {
        **WORKER_ENV,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_STORAGE_DIR": str(layout.root),
        "PANORAMA_STATE_DIR": str(tmp_path / "state"),
    }
    client = Celery("shutdown-test", set_as_current=False)
    client.conf.update(celery_config(redis_url, tmp_path / "state", visibility_timeout=120))
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    started: list[ServiceProcess] = []
    yield Rig(layout, env, tmp_path, client, broker, started)
    for worker in started:
        worker.stop()
    client.close()
    broker.close()


def test_sigterm_to_the_main_process_mid_transcode_finishes_the_job_and_leaves_the_waiting_one_queued(
    rig: Rig, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    worker = rig.worker("terminated")
    running = rig.submit(clip)
    rig.wait_started(running)
    waiting = rig.submit(clip)  # one child, prefetch 1: nobody may take this one yet

    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGTERM)  # as the kubelet does: PID 1 of the container (exec-form ENTRYPOINT)
    signalled = time.time()
    assert worker.proc.wait(90) == 0, worker.output[-3000:]

    assert "warm shutdown" in worker.output.lower()
    # The job was mid-transcode when the signal came and completed before the worker left.
    record = Journal(rig.layout, running).completion()
    assert record is not None, f"the running job was abandoned: {rig.events(running)}\n{worker.output[-3000:]}"
    assert record["completed_at"] > signalled
    rig.assert_completed_once(running, attempts=1)
    assert list(rig.layout.tmp.iterdir()) == []
    # Acknowledged (acks_late, after completion), so no second delivery will ever come.
    assert rig.redis.hlen("unacked") == 0
    # The waiting job was never started and is still queued for the next worker.
    assert rig.events(waiting) == []
    assert rig.redis.llen(VIDEO_QUEUE) == 1

    rig.worker("successor")
    rig.wait_done(waiting, timeout=90)
    rig.assert_completed_once(waiting, attempts=1)
    rig.assert_completed_once(running, attempts=1)  # not run again by the successor
    rig.assert_drained()


def test_sigterm_to_the_whole_process_group_requeues_the_job_which_completes_once_after_restart(
    rig: Rig, tmp_path: Path
) -> None:
    """An init that forwards SIGTERM to the group (``tini -g``, a shell's ``kill 0``) also stops the pool child.

    The job cannot finish then; it must not be lost or done twice: the child's death rejects the
    delivery back to the queue (``reject_on_worker_lost``), ffmpeg dies with its child
    (``PR_SET_PDEATHSIG``), and the next worker runs it again and completes it once.
    """
    clip = make_clip(tmp_path / "clip.mp4")
    worker = rig.worker("group-terminated")
    job = rig.submit(clip)
    rig.wait_started(job)

    assert worker.proc is not None
    os.killpg(worker.proc.pid, signal.SIGTERM)
    worker.proc.wait(90)
    deadline = time.monotonic() + 10
    while ffmpeg_running_for(job):
        assert time.monotonic() < deadline, "ffmpeg outlived the worker"
        time.sleep(0.1)
    assert Journal(rig.layout, job).completion() is None
    assert not rig.layout.output(job).exists()
    # Back in the queue at once, not only after the visibility timeout (120 s here).
    assert rig.redis.llen(VIDEO_QUEUE) == 1, (rig.redis.llen(VIDEO_QUEUE), rig.redis.hlen("unacked"))

    rig.worker("successor")
    rig.wait_done(job, timeout=90)
    rig.assert_completed_once(job, attempts=2)
    rig.assert_drained()
