"""The Celery app: ``celery -A panorama.video_worker.celery_app worker``."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init

from panorama.core.process import after_fork
from panorama.core.queue import celery_config
from panorama.video_worker.settings import WorkerSettings


def create_celery(settings: WorkerSettings | None = None) -> Celery:
    settings = settings or WorkerSettings.load()
    app = Celery("panorama.video_worker")
    app.conf.update(celery_config(settings.redis_url, settings.state_dir))
    app.conf.update(
        worker_concurrency=settings.celery_concurrency or settings.sizing().celery_concurrency,
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
    )
    app.conf.panorama_settings = settings
    return app


app = create_celery()


@worker_process_init.connect
def _after_fork(**_: object) -> None:
    after_fork(app.conf.panorama_settings, role="video-worker")
