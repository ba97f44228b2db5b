"""Gateway routes: videos — upload for transcoding, follow the task, download the rendition."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from panorama.core.errors import Problem
from panorama.gateway.deps import SettingsDep
from panorama.gateway.jobs import TaskIdDep, TaskStatus, VideoIdDep, VideoJobs, VideoJobsDep
from panorama.gateway.probe import probe_video
from panorama.gateway.upload import Pace, discard, receive_file


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """FastAPI merges this into the app's lifespan: the job client is built and closed per worker."""
    jobs = VideoJobs(app.state.settings)
    await anyio.to_thread.run_sync(jobs.prepare)
    app.state.video_jobs = jobs
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(jobs.close)


router = APIRouter(tags=["videos"], lifespan=lifespan)


class UploadAccepted(BaseModel):
    task_id: str
    status_url: str


@router.post("/upload-video", status_code=202, responses={408: {}, 413: {}, 415: {}, 422: {}, 503: {}})
async def upload_video(request: Request, jobs: VideoJobsDep, settings: SettingsDep) -> UploadAccepted:
    """Store a multipart ``file`` upload, check it is a video, and queue it for transcoding."""
    job_id = uuid.uuid4().hex
    part = jobs.layout.tmp / f"{job_id}.upload.part"
    pace = Pace(settings.upload_timeout, settings.upload_min_rate, settings.upload_rate_grace)
    size = await receive_file(request, part, limit=settings.max_upload_bytes, pace=pace)
    try:
        info = await probe_video(part, settings.probe_timeout)
        await anyio.to_thread.run_sync(jobs.submit, job_id, part, info, size)
    except BaseException:
        await discard(part)
        raise
    return UploadAccepted(task_id=job_id, status_url=f"/task/{job_id}")


@router.get("/task/{task_id}", responses={404: {}, 503: {}})
def task_status(task_id: TaskIdDep, jobs: VideoJobsDep) -> TaskStatus:
    """A video task's status, progress (0-100) and, when done, where to download the result."""
    # `def`: the record lookup and Celery's Redis backend block; FastAPI runs this in the thread pool.
    if not jobs.known(task_id):
        raise Problem(404, f"no task {task_id!r}", title="Unknown task")
    return jobs.status(task_id)


@router.get("/videos/{video_id}", response_class=FileResponse, responses={206: {}, 404: {}, 416: {}})
def download_video(video_id: VideoIdDep, jobs: VideoJobsDep) -> FileResponse:
    """The transcoded MP4; supports HTTP range requests (seeking in a player)."""
    path = jobs.output(video_id)
    if path is None:
        raise Problem(404, f"no finished video {video_id!r}", title="Unknown video")
    return FileResponse(path, media_type="video/mp4", filename=f"{video_id}.mp4", content_disposition_type="inline")
