"""The contract between the gateway (which publishes) and the video worker (which runs).

The task name, its queue, the Celery settings both sides must agree on, and the layout of the
shared storage directory. With ``PANORAMA_REDIS_URL`` set, Redis is broker and result backend.
With ``PANORAMA_BROKER_URL`` (``amqp://``) set too, RabbitMQ is the broker and results stay in
Redis: an unacknowledged job of a worker whose connection dies (a SIGKILLed pod: no heartbeat,
closed socket) is handed out again at once, where Redis waits out its visibility timeout.
Without it the embedded default is kombu's filesystem transport and Celery's file result backend
under the state directory, so one machine needs nothing installed (that transport has no
visibility timeout: a job lost with a killed worker is not redelivered).

Building a config or a layout does no I/O; :func:`ensure_queue_dirs` and
:meth:`StorageLayout.ensure` create directories and belong in start-up code.
No Celery import here: the gateway only needs plain settings and the task's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

VIDEO_QUEUE = "video"
PROCESS_VIDEO_TASK = "panorama.video_worker.process_video"
QUEUE_SUBDIRS = ("in", "processed", "results")
# A publisher must fail fast (503) when Redis is gone rather than hang a request.
SOCKET_TIMEOUT = 5.0
SOCKET_CONNECT_TIMEOUT = 2.0
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.5}
# AMQP heartbeats: a peer silent for two of these is dead, its unacked jobs requeued by RabbitMQ.
AMQP_HEARTBEAT = 10
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def is_amqp(url: str | None) -> bool:
    return bool(url) and str(url).startswith(AMQP_SCHEMES)


def _amqp_or_unset(value: object) -> object:
    if value in (None, ""):
        return None
    if not is_amqp(str(value)):
        raise ValueError("PANORAMA_BROKER_URL must be an amqp:// (or amqps://) URL; leave it unset for Redis")
    return value


# PANORAMA_BROKER_URL as the gateway (which publishes) and the worker (which consumes) read it.
BrokerUrl = Annotated[str | None, BeforeValidator(_amqp_or_unset)]


def queue_dir(state_dir: Path) -> Path:
    return (state_dir / "queue").resolve()


def ensure_queue_dirs(state_dir: Path) -> None:
    """Create the embedded transport's folders (harmless when Redis is used)."""
    for sub in QUEUE_SUBDIRS:
        (queue_dir(state_dir) / sub).mkdir(parents=True, exist_ok=True)


def celery_config(
    redis_url: str | None, state_dir: Path, *, visibility_timeout: int = 7200, broker_url: str | None = None
) -> dict[str, Any]:
    """Broker, backend and the delivery guarantees both sides must agree on."""
    config: dict[str, Any] = {
        "task_default_queue": VIDEO_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_extended": True,
        "task_track_started": True,
        # Results outlive any reasonable polling; the gateway also keeps its own completion record.
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": SOCKET_CONNECT_TIMEOUT,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
    }
    if redis_url:
        config["broker_url"] = redis_url
        config["result_backend"] = redis_url
        config["redis_socket_timeout"] = SOCKET_TIMEOUT
        config["redis_socket_connect_timeout"] = SOCKET_CONNECT_TIMEOUT
        config["broker_transport_options"] = {
            # Longer than the longest job, or Redis hands an unacked job to a second worker.
            "visibility_timeout": visibility_timeout,
            # A job whose worker was SIGKILLed is handed out again once the visibility timeout has
            # passed; by default kombu only looks every 100 s, so look about ten times per timeout.
            "unacked_restore_interval": max(1, min(60, visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_CONNECT_TIMEOUT,
        }
        config["result_backend_transport_options"] = {"visibility_timeout": visibility_timeout}
    if is_amqp(broker_url):
        config["broker_url"] = broker_url
        config["broker_heartbeat"] = AMQP_HEARTBEAT
        config["broker_transport_options"] = {
            # The publish returns once RabbitMQ has the message (a nack or a lost broker raises: 503).
            "confirm_publish": True,
            "read_timeout": SOCKET_TIMEOUT,
            "write_timeout": SOCKET_TIMEOUT,
        }
        if not redis_url:
            config["result_backend"] = f"file://{queue_dir(state_dir) / 'results'}"
    elif not redis_url:
        folder = queue_dir(state_dir)
        config["broker_url"] = "filesystem://localhost//"  # the host is unused; without one kombu warns at start
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            # kombu's default is ./control, relative to wherever the process happens to start.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
        config["result_backend"] = f"file://{folder / 'results'}"
    return config


@dataclass(frozen=True)
class StorageLayout:
    """Where uploads, renditions and job records live in the shared storage directory.

    Every file is first written under ``tmp/`` (same file system) and renamed into place, so a
    reader never sees half a file under a final name.
    """

    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def ensure(self) -> None:
        for folder in (self.uploads, self.outputs, self.jobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def source(self, job_id: str) -> Path:
        """The upload as received (its name never comes from the client)."""
        return self.uploads / f"{job_id}.src"

    def output(self, job_id: str) -> Path:
        return self.outputs / f"{job_id}.mp4"

    def record(self, job_id: str) -> Path:
        """Written by the gateway once the job is queued: the id is known from then on."""
        return self.jobs / f"{job_id}.json"

    def completion(self, job_id: str) -> Path:
        """Created exactly once, by the attempt that finished the job."""
        return self.jobs / f"{job_id}.done.json"

    def events(self, job_id: str) -> Path:
        """Append-only log of attempts (started, completed, ...), one JSON object a line."""
        return self.jobs / f"{job_id}.events.jsonl"
