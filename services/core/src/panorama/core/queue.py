"""Celery configuration shared by the gateway (which publishes) and the video worker (which runs).

With ``PANORAMA_REDIS_URL`` set, Redis is broker and result backend. Without it the embedded
default is kombu's filesystem transport and Celery's file result backend under the state
directory, so one machine needs nothing installed. Returns plain settings: no Celery import here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

VIDEO_QUEUE = "video"
PROCESS_VIDEO_TASK = "panorama.video_worker.process_video"


def celery_config(redis_url: str | None, state_dir: Path, *, visibility_timeout: int = 7200) -> dict[str, Any]:
    """Broker, backend and the delivery guarantees both sides must agree on."""
    config: dict[str, Any] = {
        "task_default_queue": VIDEO_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_extended": True,
        "task_track_started": True,
        "broker_connection_retry_on_startup": True,
    }
    if redis_url:
        config["broker_url"] = redis_url
        config["result_backend"] = redis_url
        # Longer than the longest job, or Redis hands an unacked job to a second worker.
        config["broker_transport_options"] = {"visibility_timeout": visibility_timeout}
        config["result_backend_transport_options"] = {"visibility_timeout": visibility_timeout}
    else:
        queue_dir = (state_dir / "queue").resolve()
        for sub in ("in", "processed", "results"):
            (queue_dir / sub).mkdir(parents=True, exist_ok=True)
        config["broker_url"] = "filesystem://"
        config["broker_transport_options"] = {
            "data_folder_in": str(queue_dir / "in"),
            "data_folder_out": str(queue_dir / "in"),
            "processed_folder": str(queue_dir / "processed"),
            "store_processed": False,
        }
        config["result_backend"] = f"file://{queue_dir / 'results'}"
    return config
