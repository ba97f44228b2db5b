"""Prometheus series and exemplars of Celery tasks, shared by the gateway and the video worker.

Apart from panorama.core.metrics (FastAPI middleware and the ``/metrics`` route) so that the
worker, which serves no HTTP, imports neither FastAPI nor Starlette. The multiprocess registry
notes in panorama.core.metrics apply here too.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from prometheus_client import Gauge, Histogram

CELERY_QUEUE_DEPTH = Gauge(
    "panorama_celery_queue_depth",
    "Messages waiting in a Celery queue (every process sees the same queue: the max, not the sum).",
    ["queue"],
    multiprocess_mode="livemax",
)
CELERY_TASK_DURATION = Histogram(
    "panorama_celery_task_duration_seconds",
    "Celery task run time by task name and final state.",
    ["task", "state"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)


def trace_exemplar() -> dict[str, str] | None:
    """``{"trace_id": ...}`` of the current sampled span, for an observation's exemplar.

    ``None`` in prometheus_client's multiprocess mode (the gateway's workers, whose master serves
    their samples): its file-backed values keep no exemplars, so one would be validated and dropped.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return {"trace_id": format(context.trace_id, "032x")}


def record_celery_queue_depth(queue: str, depth: int) -> None:
    CELERY_QUEUE_DEPTH.labels(queue).set(depth)


def observe_celery_task(task: str, state: str, seconds: float) -> None:
    CELERY_TASK_DURATION.labels(task, state).observe(seconds, exemplar=trace_exemplar())
