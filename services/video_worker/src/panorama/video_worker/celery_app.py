"""The Celery app: ``celery -A panorama.video_worker.celery_app worker``.

Delivery settings, on purpose: a job is acknowledged only once it has finished (``acks_late``) and
handed back if its pool child dies (``reject_on_worker_lost``); each child reserves one job at a
time (prefetch 1: a long transcode must not sit on a queued job another child could run); Redis
keeps an unacknowledged job invisible for longer than the hard time limit, so a job still running
is never handed to a second worker. Concurrency comes from the CPU limit, one ffmpeg per core.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from panorama.core.process import after_fork
from panorama.core.queue import StorageLayout, celery_config, ensure_queue_dirs
from panorama.video_worker import observability, tasks, tools
from panorama.video_worker.retention import RetentionTimer
from panorama.video_worker.settings import WorkerSettings


def create_celery(settings: WorkerSettings | None = None) -> Celery:
    """Build the app and register its task; no I/O (directories are made in ``worker_init``)."""
    settings = settings or WorkerSettings.load()
    app = Celery("panorama.video_worker")
    config = celery_config(
        settings.redis_url,
        settings.state_dir,
        visibility_timeout=settings.visibility_timeout,
        broker_url=settings.broker_url,
    )
    app.conf.update(config)
    app.conf.update(
        worker_concurrency=settings.concurrency(),
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_soft_time_limit=settings.video_soft_time_limit,
        task_time_limit=settings.video_time_limit,
        # Events let `celery events`/flower watch the pool; cheap next to a transcode.
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    app.conf.panorama_settings = settings
    tasks.register(app, settings)
    return app


app = create_celery()
log = logging.getLogger(__name__)


def plan_record(settings: WorkerSettings) -> dict[str, Any]:
    """The sizing plan the worker runs with (the CPU limit as read, concurrency, ffmpeg threads)."""
    return {
        **settings.sizing().as_dict(),
        "concurrency": settings.concurrency(),
        "ffmpeg_threads": settings.threads_per_ffmpeg(),
    }


@worker_init.connect
def _prepare_storage(**_: Any) -> None:
    settings: WorkerSettings = app.conf.panorama_settings
    # Before the pool forks: every child inherits the choice, and no job ever meets a missing binary.
    try:
        tools.prepare()
    except tools.ToolsMissing as exc:
        print(f"video-worker: not starting: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(tools.EXIT_NO_TOOLS) from None
    ensure_queue_dirs(settings.state_dir)
    StorageLayout(settings.storage_dir).ensure()
    observability.start_metrics_server(settings)


@worker_ready.connect
def _report_tools(**_: Any) -> None:
    tools.log_resolved()


@worker_ready.connect
def _log_plan(**_: Any) -> None:
    # One line a log reader can parse, `video worker plan {json}` (the HTTP services serve /debug/plan);
    # worker_ready comes after Celery has set up logging, worker_init before.
    log.info("video worker plan %s", json.dumps(plan_record(app.conf.panorama_settings)))


@worker_ready.connect
def _start_retention(**_: Any) -> None:
    # After the pool has forked (a thread started before fork could leave a child a held lock).
    settings: WorkerSettings = app.conf.panorama_settings
    timer = RetentionTimer(
        StorageLayout(settings.storage_dir),
        upload_retention=settings.upload_retention,
        rendition_retention=settings.rendition_retention,
        interval=settings.retention_interval,
    )
    app.conf.panorama_retention = timer
    timer.start()


@worker_shutdown.connect
def _stop_retention(**_: Any) -> None:
    timer = getattr(app.conf, "panorama_retention", None)
    if timer is not None:
        timer.stop()


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    after_fork(app.conf.panorama_settings, role="video-worker")
    observability.on_child_start()


@worker_process_shutdown.connect
def _before_child_exit(**_: Any) -> None:
    observability.on_child_stop()
