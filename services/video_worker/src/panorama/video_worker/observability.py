"""The worker's traces and metrics: Celery run spans, an ffmpeg span, task durations, queue depth, ``/metrics``.

Process model: Celery's prefork parent only consumes and dispatches; tasks run in its children.
The children record task durations into ``PROMETHEUS_MULTIPROC_DIR`` (one file per child) and the
parent serves one ``/metrics`` for the whole pod on ``PANORAMA_WORKER_METRICS_PORT`` (default
9100, 0 switches it off), aggregating the children's files. One port per pod, whatever the
concurrency, rather than a server per child (ports that change as children are replaced).

prometheus_client picks its value store when first imported, so the parent sets the multiprocess
directory (a private temporary one unless the chart mounts one) before anything imports it, and
the children, forked afterwards, write their files there. The parent writes no samples itself:
the queue depth is read from the broker at scrape time, so no thread of the parent ever holds
prometheus_client's file lock when Celery forks a new child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amqp.exceptions import AMQPError
from opentelemetry import trace
from redis.exceptions import RedisError

from panorama.core.queue import VIDEO_QUEUE, queue_dir

if TYPE_CHECKING:
    from panorama.video_worker.ffmpeg import MediaInfo
    from panorama.video_worker.settings import WorkerSettings

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
TRACER_NAME = "panorama.video_worker"
_task_started: dict[str, float] = {}


# --- parent (worker_init): the /metrics server


def start_metrics_server(settings: WorkerSettings) -> int | None:
    """Serve ``/metrics`` from the prefork parent; the port, or ``None`` when off or unavailable."""
    port = settings.worker_metrics_port
    if not port:
        return None
    directory = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="panorama-worker-metrics-")
    os.environ[MULTIPROC_ENV] = directory  # inherited by every child forked from here on
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):  # a previous run's samples would be counted again
        stale.unlink(missing_ok=True)
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, directory)
    registry.register(QueueDepthCollector(settings))
    try:
        start_http_server(port, addr=settings.worker_metrics_addr, registry=registry)
    except OSError as exc:  # a second worker on one host (tests, make up): serve nothing, run anyway
        log.warning("worker /metrics not served: port %s: %s", port, exc)
        return None
    log.info("worker metrics on :%s/metrics (children's samples in %s)", port, directory)
    return port


class QueueDepthCollector:
    """``panorama_celery_queue_depth{queue="video"}``: messages waiting, read from the broker per scrape."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._redis: Any = None

    def depth(self) -> int:
        if self.settings.broker_url:
            # RabbitMQ: a passive declare answers the queue's ready-message count.
            import kombu

            with kombu.Connection(self.settings.broker_url, connect_timeout=2) as conn:
                return int(conn.default_channel.queue_declare(VIDEO_QUEUE, passive=True).message_count)
        if not self.settings.redis_url:
            # kombu's filesystem transport: one file per waiting message.
            return sum(1 for _ in (queue_dir(self.settings.state_dir) / "in").glob(f"*.{VIDEO_QUEUE}.msg"))
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        # kombu keeps a Redis queue as a list named after it.
        return int(self._redis.llen(VIDEO_QUEUE))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "panorama_celery_queue_depth", "Messages waiting in a Celery queue, read at scrape time.", labels=["queue"]
        )
        try:
            family.add_metric([VIDEO_QUEUE], self.depth())
        except (OSError, ValueError, RedisError, AMQPError) as exc:  # broker down: the scrape answers without it
            log.warning("queue depth unavailable: %s", exc)
            return
        yield family


# --- children (worker_process_init / worker_process_shutdown)


def on_child_start() -> None:
    """After ``after_fork``: Celery run spans (parented by the gateway's publish) and task timing."""
    from celery.signals import task_postrun, task_prerun

    from panorama.core.telemetry import instrument_celery

    # Connected before the instrumentor's: the duration is observed while the run span is current.
    task_prerun.connect(_task_prerun, weak=False)
    task_postrun.connect(_task_postrun, weak=False)
    instrument_celery()


def on_child_stop() -> None:
    """Prefork children leave through ``os._exit``: flush spans here, and drop this child's live gauges."""
    from panorama.core.telemetry import shutdown_telemetry

    shutdown_telemetry(2.0)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def _task_prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is None or task is None:
        return
    from panorama.core.task_metrics import observe_celery_task

    observe_celery_task(task.name, state or "UNKNOWN", time.perf_counter() - started)


# --- the ffmpeg span


class FfmpegSpan:
    """The span around one transcode; call :meth:`output` with the rendition's facts before it ends."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def output(self, path: Path, rendition: MediaInfo) -> None:
        self.span.set_attributes(
            {
                "ffmpeg.output.codec": rendition.video_codec,
                "ffmpeg.output.duration_s": rendition.duration,
                "ffmpeg.output.size_bytes": path.stat().st_size,
                "ffmpeg.output.width": rendition.width,
                "ffmpeg.output.height": rendition.height,
            }
        )


@contextlib.contextmanager
def ffmpeg_span(source: Path, info: MediaInfo, settings: WorkerSettings, threads: int) -> Iterator[FfmpegSpan]:
    """``ffmpeg transcode``: input facts, the encoder settings and (set by ffmpeg.run) the exit code."""
    attributes: dict[str, Any] = {
        "ffmpeg.input.duration_s": info.duration,
        "ffmpeg.input.size_bytes": source.stat().st_size,
        "ffmpeg.input.has_audio": info.has_audio,
        "ffmpeg.preset": settings.video_preset,
        "ffmpeg.crf": settings.video_crf,
        "ffmpeg.threads": threads,
    }
    if info.video_codec:  # empty when the gateway's probe was trusted (it sends duration and audio only)
        attributes["ffmpeg.input.codec"] = info.video_codec
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span("ffmpeg transcode", kind=trace.SpanKind.INTERNAL, attributes=attributes) as span:
        yield FfmpegSpan(span)
