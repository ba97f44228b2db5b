"""Work each process does once after fork: gunicorn's ``post_fork``, Celery's ``worker_process_init``,
the compute pool's initializer.

Exporter threads and sockets made before a fork do not survive it (and would be shared by every
child if they did), so logging and telemetry are set up here, in the process that will use them.
"""

from __future__ import annotations

from panorama.core.logging import configure_logging
from panorama.core.settings import PanoramaSettings
from panorama.core.telemetry import setup_telemetry


def after_fork(settings: PanoramaSettings, *, role: str) -> None:
    configure_logging(role, settings.log_level, json=settings.log_json, access_log=settings.access_log)
    setup_telemetry(role, settings)
