"""Video jobs as the gateway sees them: publish by task name, record, and report status.

The gateway never imports the worker: it publishes ``PROCESS_VIDEO_TASK`` by name with the job id
as the Celery task id, and reads state from the shared result backend and the storage volume.
A job is known once its record is written, which happens only after the broker took the job, so
an unknown id is 404 and a known one is never stuck without a task behind it.

Celery's client and the Redis result backend are blocking libraries: every method here is plain
``def`` and the routes run them in the thread pool (bounded by AnyIO's limiter, sized from the plan).
Broker and backend sockets have short timeouts (see :mod:`panorama.core.queue`), so a dead Redis
is a 503 within seconds, never a hung request.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from amqp.exceptions import AMQPError, MessageNacked
from celery import Celery
from celery.result import AsyncResult
from fastapi import Depends, Request
from kombu.exceptions import OperationalError
from pydantic import BaseModel
from redis.exceptions import RedisError

from panorama.core.errors import Problem
from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout, celery_config, ensure_queue_dirs
from panorama.gateway.probe import VideoInfo
from panorama.gateway.settings import GatewaySettings

JOB_ID = re.compile(r"[0-9a-f]{32}")  # used with fullmatch: `$` would let a trailing newline through
Status = Literal["PENDING", "STARTED", "PROGRESS", "SUCCESS", "FAILURE"]
# Celery's other states, as the public API reports them: a retry waits in the queue again.
STATE_MAP: dict[str, Status] = {"RETRY": "PENDING", "RECEIVED": "PENDING", "REVOKED": "FAILURE", "REJECTED": "FAILURE"}
PUBLIC_STATES = frozenset(get_args(Status))
# AMQPError: a refused or lost RabbitMQ connection; MessageNacked: the broker refused the job (confirms).
BROKER_ERRORS = (OperationalError, RedisError, AMQPError, MessageNacked, OSError, TimeoutError)


class VideoResult(BaseModel):
    video_id: str
    download_url: str
    codec: str
    duration: float
    width: int
    height: int
    size: int


class TaskStatus(BaseModel):
    task_id: str
    status: Status
    progress: int
    result: VideoResult | None = None
    error: str | None = None


def public_status(state: str) -> Status:
    if state in PUBLIC_STATES:
        return state  # type: ignore[return-value]
    return STATE_MAP.get(state, "PENDING")


def _unavailable(what: str, exc: BaseException) -> Problem:
    return Problem(
        503, f"the job queue is unavailable ({what}: {type(exc).__name__})", title="Queue unavailable",
        headers={"Retry-After": "2"},
    )  # fmt: skip


class VideoJobs:
    """The gateway's side of the video pipeline. Building it does no I/O."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.layout = StorageLayout(settings.storage_dir)
        config = celery_config(settings.redis_url, settings.state_dir, broker_url=settings.broker_url)
        # Two clients: publishing through an app with a result backend makes Celery subscribe to
        # every task's result channel (for AsyncResult.get, which the gateway never calls) and
        # retry that subscription for 20 s when Redis is down. The publisher has no backend.
        self.publisher = Celery("panorama.gateway", set_as_current=False)
        self.publisher.conf.update({k: v for k, v in config.items() if not k.startswith("result_backend")})
        self.results = Celery("panorama.gateway.results", set_as_current=False)
        self.results.conf.update(config)
        if settings.redis_url:
            # A status read fails fast (503) instead of retrying for the worker's benefit.
            self.results.conf.result_backend_transport_options = {
                **config["result_backend_transport_options"],
                "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
            }

    def prepare(self) -> None:
        """Start-up: the storage and (embedded mode) queue folders exist."""
        self.layout.ensure()
        if not self.settings.redis_url:
            ensure_queue_dirs(self.settings.state_dir)

    def close(self) -> None:
        self.publisher.close()
        self.results.close()

    def submit(self, job_id: str, upload: Path, info: VideoInfo, size: int) -> None:
        """Move the vetted upload into place, queue the job, then record it; undo all on failure."""
        source = self.layout.source(job_id)
        os.replace(upload, source)
        try:
            # No source hint: our probe reads the container header only (no audio facts, no duration
            # for MPEG streams), so the worker runs its own ffprobe on the file it transcodes.
            self.publisher.send_task(PROCESS_VIDEO_TASK, args=[job_id], task_id=job_id)
        except BROKER_ERRORS as exc:
            source.unlink(missing_ok=True)
            raise _unavailable("enqueue", exc) from None
        record = {"job_id": job_id, "created_at": time.time(), "size": size, "probe": dataclasses.asdict(info)}
        tmp = self.layout.tmp / f"{job_id}.json.part"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.layout.record(job_id))

    def known(self, job_id: str) -> bool:
        return self.layout.record(job_id).exists()

    def status(self, job_id: str) -> TaskStatus:
        """The job's state: its completion record if it has one, else the result backend's word."""
        done = self._completion(job_id)
        if done is not None:
            return TaskStatus(task_id=job_id, status="SUCCESS", progress=100, result=self._result(done))
        result = AsyncResult(job_id, app=self.results)
        try:
            state, info = result.state, result.info
        except BROKER_ERRORS as exc:
            raise _unavailable("status", exc) from None
        status = public_status(state)
        if status == "SUCCESS" and isinstance(info, dict):
            return TaskStatus(task_id=job_id, status="SUCCESS", progress=100, result=self._result(info))
        if status == "FAILURE":
            reason = str(info) if info else ""
            error = reason or (type(info).__name__ if info is not None else f"the job ended as {state}")
            return TaskStatus(task_id=job_id, status="FAILURE", progress=0, error=error)
        progress = int(info.get("progress", 0)) if status == "PROGRESS" and isinstance(info, dict) else 0
        return TaskStatus(task_id=job_id, status=status, progress=max(0, min(99, progress)))

    def output(self, video_id: str) -> Path | None:
        path = self.layout.output(video_id)
        return path if path.is_file() else None

    def _completion(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.layout.completion(job_id).read_text())
        except FileNotFoundError:
            return None

    @staticmethod
    def _result(record: dict[str, Any]) -> VideoResult:
        return VideoResult(
            video_id=record["video_id"],
            download_url=f"/videos/{record['video_id']}",
            codec=record["codec"],
            duration=record["duration"],
            width=record["width"],
            height=record["height"],
            size=record["size"],
        )


async def get_video_jobs(request: Request) -> VideoJobs:
    return request.app.state.video_jobs


async def valid_task_id(task_id: str) -> str:
    """A well-formed id (never a path); 404 otherwise, like an unknown one."""
    if not JOB_ID.fullmatch(task_id):
        raise Problem(404, f"no task {task_id!r}", title="Unknown task")
    return task_id


async def valid_video_id(video_id: str) -> str:
    if not JOB_ID.fullmatch(video_id):
        raise Problem(404, f"no video {video_id!r}", title="Unknown video")
    return video_id


VideoJobsDep = Annotated[VideoJobs, Depends(get_video_jobs)]
TaskIdDep = Annotated[str, Depends(valid_task_id)]
VideoIdDep = Annotated[str, Depends(valid_video_id)]
