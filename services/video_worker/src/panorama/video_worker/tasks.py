"""``process_video``: transcode one upload into an MP4 rendition, at most once to completion.

Steps: return the completion record if the job is already done; count the attempt (give up after
``video_max_attempts`` so a poison file cannot crash-loop the pool); transcode into ``tmp/`` with
ffmpeg reporting progress; check the output really plays and is as long as the input (a truncated
upload often makes ffmpeg exit 0 with half a video); rename it into place; record completion.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout
from panorama.video_worker import ffmpeg
from panorama.video_worker.errors import InvalidVideo, TooManyAttempts, TranscodeTimeout, TransientError
from panorama.video_worker.journal import Journal
from panorama.video_worker.observability import ffmpeg_span
from panorama.video_worker.settings import WorkerSettings

JOB_ID = re.compile(r"[0-9a-f]{32}")  # used with fullmatch: `$` would let a trailing newline through
# Storage errors a shared volume recovers from; anything else on disk is a bug or a bad job.
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.ENOSPC, errno.ESTALE, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT})
PROGRESS_INTERVAL = 0.25
SourceHint = dict[str, Any]


def allowed_shortfall(duration: float) -> float:
    """How much shorter than its input a rendition may be: a frame or two of rounding, not more."""
    return max(0.2, 0.02 * duration)


def process(
    job_id: str,
    settings: WorkerSettings,
    report: Callable[[float], None],
    *,
    redelivered: bool = False,
    source: SourceHint | None = None,
) -> dict[str, Any]:
    """Run one delivery of a job; return its completion record.

    ``source`` is a caller's own ffprobe of the upload (duration, audio or not), which saves a probe;
    the gateway sends none (its image has no ffprobe), so the worker probes the upload itself.
    """
    if not JOB_ID.fullmatch(job_id):
        raise InvalidVideo(f"{job_id!r} is not a job id")
    layout = StorageLayout(settings.storage_dir)
    journal = Journal(layout, job_id)
    done = journal.completion()
    if done is not None:
        journal.append("duplicate", redelivered=redelivered)
        return done
    attempt = journal.attempts() + 1
    journal.append("started", attempt=attempt, redelivered=redelivered)
    if attempt > settings.video_max_attempts:
        raise TooManyAttempts(
            f"gave up after {settings.video_max_attempts} attempts: the worker died or failed on each one"
        )
    start = time.perf_counter()
    output = layout.output(job_id)
    if output.exists():
        # An earlier attempt renamed its output into place and died before recording completion.
        rendition, ffmpeg_seconds = ffmpeg.probe(output, settings.ffprobe_timeout), None
    else:
        rendition, ffmpeg_seconds = _transcode(layout, job_id, settings, report, source)
    record = {
        "video_id": job_id,
        **rendition.as_dict(),
        "size": output.stat().st_size,
        "attempt": attempt,
        "seconds": round(time.perf_counter() - start, 3),
        "ffmpeg_seconds": ffmpeg_seconds,
        "completed_at": time.time(),
    }
    if journal.complete(record):
        journal.append("completed", attempt=attempt)
        # The rendition is the product: a succeeded job's upload is not kept (see retention.py).
        layout.source(job_id).unlink(missing_ok=True)
        return record
    # Another attempt completed first; its record is the one answer.
    return journal.completion() or record


def _source_info(path: Path, settings: WorkerSettings, hint: SourceHint | None) -> ffmpeg.MediaInfo:
    if not path.exists():
        raise InvalidVideo("the uploaded file is no longer in storage")
    duration = (hint or {}).get("duration")
    if isinstance(duration, int | float) and duration > 0:
        has_audio = bool((hint or {}).get("has_audio", True))
        return ffmpeg.MediaInfo(duration=float(duration), video_codec="", width=0, height=0, has_audio=has_audio)
    return ffmpeg.probe(path, settings.ffprobe_timeout)


def _transcode(
    layout: StorageLayout,
    job_id: str,
    settings: WorkerSettings,
    report: Callable[[float], None],
    hint: SourceHint | None,
) -> tuple[ffmpeg.MediaInfo, float]:
    """Transcode the job's upload into its output; return the output's probe and ffmpeg's run time."""
    source = layout.source(job_id)
    info = _source_info(source, settings, hint)
    # Leftovers of attempts whose worker died; a live duplicate cannot exist (visibility timeout).
    for stale in layout.tmp.glob(f"{job_id}.*.part.mp4"):
        stale.unlink(missing_ok=True)
    tmp = layout.tmp / f"{job_id}.{uuid.uuid4().hex[:8]}.part.mp4"
    cmd = ffmpeg.transcode_command(
        source,
        tmp,
        preset=settings.video_preset,
        crf=settings.video_crf,
        threads=settings.threads_per_ffmpeg(),
        has_audio=info.has_audio,
    )
    try:
        started = time.perf_counter()
        with ffmpeg_span(source, info, settings, settings.threads_per_ffmpeg()) as span:
            warning = ffmpeg.run(cmd, info.duration, report)
            elapsed = round(time.perf_counter() - started, 3)
            try:
                rendition = ffmpeg.probe(tmp, settings.ffprobe_timeout)
            except InvalidVideo as exc:
                reason = warning or "no error reported"
                raise InvalidVideo(f"ffmpeg produced no playable video ({exc}); {reason}") from None
            span.output(tmp, rendition)
        if rendition.duration < info.duration - allowed_shortfall(info.duration):
            raise InvalidVideo(
                f"the upload is truncated or corrupt: only {rendition.duration:.2f}s of its "
                f"{info.duration:.2f}s could be decoded" + (f" (ffmpeg: {warning})" if warning else "")
            )
        os.replace(tmp, layout.output(job_id))
    finally:
        tmp.unlink(missing_ok=True)
    return rendition, elapsed


def register(app: Celery, settings: WorkerSettings) -> Task:
    """Register ``process_video`` on ``app`` with its delivery and time-limit settings."""

    @app.task(
        name=PROCESS_VIDEO_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(TransientError,),
        max_retries=settings.video_max_retries,
        retry_backoff=2,
        retry_backoff_max=60,
        retry_jitter=True,
        soft_time_limit=settings.video_soft_time_limit,
        time_limit=settings.video_time_limit,
    )
    def process_video(self: Task, job_id: str, source: SourceHint | None = None) -> dict[str, Any]:
        last = {"percent": -1, "at": 0.0}

        def report(percent: float) -> None:
            now = time.monotonic()
            whole = int(percent)
            if whole > last["percent"] and now - last["at"] >= PROGRESS_INTERVAL:
                last.update(percent=whole, at=now)
                self.update_state(state="PROGRESS", meta={"progress": whole})

        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        journal = Journal(StorageLayout(settings.storage_dir), job_id) if JOB_ID.fullmatch(job_id) else None
        try:
            try:
                return process(job_id, settings, report, redelivered=redelivered, source=source)
            except SoftTimeLimitExceeded:
                # ffmpeg.run has already killed ffmpeg on the way out.
                raise TranscodeTimeout(
                    f"the transcode took longer than {settings.video_soft_time_limit}s and was stopped"
                ) from None
            except OSError as exc:
                if exc.errno in TRANSIENT_ERRNOS:
                    raise TransientError(f"storage error: {exc}") from exc
                raise
        except Exception as exc:
            if journal is not None:
                with contextlib.suppress(OSError):
                    journal.append("retrying" if isinstance(exc, TransientError) else "failed", reason=str(exc))
            raise

    return process_video
