"""Work each process does once after fork: gunicorn's ``post_fork`` and Celery's ``worker_process_init``."""

from __future__ import annotations

from panorama.core.logging import configure_logging
from panorama.core.settings import PanoramaSettings


def after_fork(settings: PanoramaSettings, *, role: str) -> None:
    configure_logging(role, settings.log_level, json=settings.log_json)
