"""``process_video`` as a real Celery worker runs it: transcode, record once, refuse what cannot play.

One prefork worker (two children) on the session's Redis database serves the module; each job is
published by name as the gateway does, its upload made by ffmpeg's ``testsrc``. ``process`` itself
is also called in-process where the point is the task module's own logic (progress, resumption).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout, celery_config
from panorama.testing import ServiceProcess, celery_worker_command, make_clip, wait_until
from panorama.video_worker import tasks
from panorama.video_worker.errors import InvalidVideo
from panorama.video_worker.journal import Journal
from panorama.video_worker.settings import WorkerSettings

pytestmark = pytest.mark.slow

MAX_ATTEMPTS = 3
CLIP_SECONDS = 2.0


@dataclass
class Worker:
    layout: StorageLayout
    client: Celery
    process: ServiceProcess

    def submit(self, upload: bytes, job_id: str | None = None, **kwargs: Any) -> str:
        job_id = job_id or uuid.uuid4().hex
        if tasks.JOB_ID.fullmatch(job_id):
            self.layout.source(job_id).write_bytes(upload)
        self.client.send_task(PROCESS_VIDEO_TASK, args=[job_id], kwargs=kwargs, task_id=job_id)
        return job_id

    def outcome(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The task's final meta (SUCCESS or FAILURE), read from the result backend."""
        meta: dict[str, Any] = {}

        def finished() -> bool:
            meta.update(self.client.backend.get_task_meta(job_id))
            return meta["status"] in ("SUCCESS", "FAILURE")

        wait_until(finished, timeout, f"{job_id} unfinished:\n{self.process.output[-3000:]}")
        return meta

    def events(self, job_id: str) -> list[str]:
        return [e["event"] for e in Journal(self.layout, job_id).events()]


@pytest.fixture(scope="module")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("tasks")
    layout = StorageLayout(tmp / "storage")
    layout.ensure()
    env = {
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_STORAGE_DIR": str(layout.root),
        "PANORAMA_STATE_DIR": str(tmp / "state"),
        "PANORAMA_CELERY_CONCURRENCY": "2",
        "PANORAMA_CPU_LIMIT": "2",
        "PANORAMA_VIDEO_PRESET": "ultrafast",
        "PANORAMA_VIDEO_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PANORAMA_WORKER_METRICS_PORT": "0",
        "PANORAMA_LOG_JSON": "false",
    }
    cmd = celery_worker_command("tasks")
    redis.Redis.from_url(redis_url).flushdb()
    client = Celery("tasks-test", set_as_current=False)
    client.conf.update(celery_config(redis_url, tmp / "state"))
    with ServiceProcess(cmd, env, tmp / "worker.log") as process:
        wait_until(lambda: " ready." in process.output, 60, f"worker not ready:\n{process.output[-3000:]}")
        yield Worker(layout, client, process)
    client.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", CLIP_SECONDS, audio=True).read_bytes()


def test_a_clip_is_transcoded_recorded_once_and_leaves_nothing_behind(worker: Worker, clip: bytes) -> None:
    job_id = worker.submit(clip)
    meta = worker.outcome(job_id)
    assert meta["status"] == "SUCCESS", meta
    record = meta["result"]
    assert record["video_id"] == job_id
    assert record["attempt"] == 1
    assert abs(record["duration"] - CLIP_SECONDS) <= tasks.allowed_shortfall(CLIP_SECONDS)
    assert record["size"] == worker.layout.output(job_id).stat().st_size > 0
    assert Journal(worker.layout, job_id).completion() == record
    assert worker.events(job_id) == ["started", "completed"]
    assert not list(worker.layout.tmp.glob(f"{job_id}.*"))


def test_a_job_delivered_again_after_completion_answers_the_same_record_without_transcoding(
    worker: Worker, clip: bytes
) -> None:
    job_id = worker.submit(clip)
    first = worker.outcome(job_id)["result"]
    output_written = worker.layout.output(job_id).stat().st_mtime_ns
    worker.client.backend.forget(job_id)
    worker.client.send_task(PROCESS_VIDEO_TASK, args=[job_id], task_id=job_id)
    assert worker.outcome(job_id)["result"] == first
    assert worker.events(job_id) == ["started", "completed", "duplicate"]
    assert worker.layout.output(job_id).stat().st_mtime_ns == output_written


def test_an_upload_that_is_not_a_video_fails_with_its_reason_and_writes_no_output(worker: Worker) -> None:
    job_id = worker.submit(b"this is not a video\n" * 100)
    meta = worker.outcome(job_id)
    assert meta["status"] == "FAILURE"
    assert type(meta["result"]).__name__ == "InvalidVideo"
    assert worker.events(job_id) == ["started", "failed"]
    assert not worker.layout.output(job_id).exists()
    assert not list(worker.layout.tmp.glob(f"{job_id}.*"))


def test_a_truncated_upload_is_refused_not_published_as_half_a_video(worker: Worker, tmp_path: Path) -> None:
    whole = make_clip(tmp_path / "long.mp4", 6.0).read_bytes()  # faststart: the index first, then the frames
    job_id = worker.submit(whole[: len(whole) // 2])
    meta = worker.outcome(job_id)
    assert meta["status"] == "FAILURE", meta
    assert type(meta["result"]).__name__ == "InvalidVideo"
    assert not worker.layout.output(job_id).exists()
    assert Journal(worker.layout, job_id).completion() is None


def test_a_job_id_that_is_not_one_is_refused_before_touching_storage(worker: Worker) -> None:
    meta = worker.outcome(worker.submit(b"", job_id="../../etc/passwd"))
    assert meta["status"] == "FAILURE"
    assert type(meta["result"]).__name__ == "InvalidVideo"
    assert not (worker.layout.jobs / "../../etc/passwd").exists()


def test_a_job_that_failed_on_every_attempt_is_given_up_not_run_again(worker: Worker, clip: bytes) -> None:
    job_id = uuid.uuid4().hex
    journal = Journal(worker.layout, job_id)
    for attempt in range(1, MAX_ATTEMPTS + 1):  # earlier deliveries whose worker died mid-job
        journal.append("started", attempt=attempt, redelivered=attempt > 1)
    meta = worker.outcome(worker.submit(clip, job_id=job_id))
    assert meta["status"] == "FAILURE"
    assert type(meta["result"]).__name__ == "TooManyAttempts"
    assert worker.events(job_id)[-2:] == ["started", "failed"]
    assert not worker.layout.output(job_id).exists()


def test_progress_rises_to_the_end_and_an_output_already_in_place_is_recorded_not_redone(tmp_path: Path) -> None:
    settings = WorkerSettings(storage_dir=tmp_path / "storage", state_dir=tmp_path / "state", video_preset="ultrafast")
    layout = StorageLayout(settings.storage_dir)
    layout.ensure()
    job_id = uuid.uuid4().hex
    make_clip(layout.source(job_id), 3.0)
    seen: list[float] = []
    record = tasks.process(job_id, settings, seen.append)
    assert record["ffmpeg_seconds"] is not None
    assert seen == sorted(seen)
    assert seen
    assert seen[-1] >= 90

    # An attempt that renamed its output into place and died before recording completion:
    # the next one records what is there (a probe, no transcode).
    again = uuid.uuid4().hex
    layout.output(again).write_bytes(layout.output(job_id).read_bytes())
    layout.source(again).write_bytes(b"never read")
    resumed = tasks.process(again, settings, seen.append, redelivered=True)
    assert resumed["ffmpeg_seconds"] is None
    assert resumed["duration"] == pytest.approx(record["duration"])
    with pytest.raises(InvalidVideo):
        tasks.process("not-a-job", settings, seen.append)
