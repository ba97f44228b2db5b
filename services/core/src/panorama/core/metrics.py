"""Prometheus metrics at ``/metrics``: requests, loop lag, threads, blocking, and the services' pools.

Registry: with ``PROMETHEUS_MULTIPROC_DIR`` set (it must be set before the process starts, as
prometheus_client picks its value store at import), every gunicorn worker writes its samples to
files there and a scrape of any worker aggregates all of them (counters and histograms summed,
gauges per their ``multiprocess_mode``); gunicorn_conf clears the directory at start and marks dead
workers. Without it each process serves its own registry, which is exact for one worker per pod
(the chart's default: one worker per core, one core per pod) and per-worker otherwise.

Exemplars: request latency and pool-wait observations carry the sampled request's ``trace_id``
(shown in the OpenMetrics format, which a scrape asks for with its Accept header; multiprocess
mode drops them, and the JSON log lines carry the same trace ids).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from panorama.core.background import LoopTask

# The worker's series live apart so that the worker, which serves no HTTP, never imports FastAPI.
from panorama.core.task_metrics import (  # noqa: F401 (re-exported: one metrics module for the services)
    CELERY_QUEUE_DEPTH,
    CELERY_TASK_DURATION,
    observe_celery_task,
    record_celery_queue_depth,
    trace_exemplar,
)

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "unmatched"  # 404s: the raw path would make one series per probe of the scanner

# The registry is process-global by design in prometheus_client; these are the suite's shared
# series, defined once here so that every service names them the same way.
HTTP_REQUEST_DURATION = Histogram(
    "panorama_http_request_duration_seconds",
    "Inbound HTTP requests by route template and status; _count is the request count.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
LOOP_LAG = Gauge(
    "panorama_event_loop_lag_seconds",
    "Event-loop lag over the monitor's window (stat=current|p99|max); the worst worker.",
    ["stat"],
    multiprocess_mode="livemax",
)
THREAD_TOKENS = Gauge(
    "panorama_thread_limiter_tokens",
    "AnyIO's default thread limiter (def routes): state=total|in_use.",
    ["state"],
    multiprocess_mode="livesum",
)
LOOP_BLOCKED = Counter(
    "panorama_event_loop_blocked",
    "Incidents of the event loop blocked past the threshold, by the route that was running.",
    ["route"],
)
LOOP_STARVED = Counter(
    "panorama_event_loop_starved",
    "Late loop beats that no single callback caused: reason=cpu (the loop thread waited for a CPU) "
    "or callbacks (many short callbacks); see panorama.core.blocking.",
    ["reason"],
)
for _reason in ("cpu", "callbacks"):
    LOOP_STARVED.labels(_reason)  # exported at 0 from the start, so rate() has a series
LOOP_CPU_WAIT = Counter(
    "panorama_event_loop_cpu_wait_seconds",
    "Time the loop thread was runnable but waiting for a CPU (its schedstat); rate() = share of wall time.",
)
DB_POOL_CONNECTIONS = Gauge(
    "panorama_db_pool_connections",
    "SQLAlchemy pool connections: state=size|checked_out|overflow.",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_WAIT = Histogram(
    "panorama_db_pool_wait_seconds",
    "Time spent waiting for a pooled database connection.",
    ["pool"],
    buckets=LATENCY_BUCKETS,
)
PROCESS_POOL_TASKS = Gauge(
    "panorama_process_pool_tasks",
    "Process pool: state=size|busy|queued.",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
UPSTREAM_CONNECTIONS = Gauge(
    "panorama_upstream_connections",
    "Outbound HTTP pool per downstream (the gateway's aiohttp connectors): state=limit|in_use.",
    ["upstream", "state"],
    multiprocess_mode="livesum",
)

# Read-through caches (io's panorama.io.readthrough): only the rare events, so a hit costs nothing
# here. A load is one database query; an expiry under load that costs more than one per key shows
# as cause="miss" growing with the readers, where refresh-ahead keeps it at cause="refresh".
CACHE_LOADS = Counter(
    "panorama_cache_loads",
    "Read-through loads run (one database query each): cause=miss|refresh|bypass (cache down).",
    ["cache", "cause"],
)
CACHE_COALESCED = Counter(
    "panorama_cache_coalesced",
    "Read-through misses that joined a load already running in their worker instead of querying.",
    ["cache"],
)

# --- helpers the services call to publish their own pools (the wiring lives in each service).


def record_db_pool(pool: str, *, size: int, checked_out: int, overflow: int) -> None:
    """Pool occupancy, e.g. from ``engine.pool.size()/checkedout()/overflow()`` in a sampler."""
    DB_POOL_CONNECTIONS.labels(pool, "size").set(size)
    DB_POOL_CONNECTIONS.labels(pool, "checked_out").set(checked_out)
    DB_POOL_CONNECTIONS.labels(pool, "overflow").set(max(0, overflow))


def observe_db_pool_wait(pool: str, seconds: float) -> None:
    DB_POOL_WAIT.labels(pool).observe(seconds, exemplar=trace_exemplar())


def record_process_pool(pool: str, *, size: int, busy: int, queued: int) -> None:
    PROCESS_POOL_TASKS.labels(pool, "size").set(size)
    PROCESS_POOL_TASKS.labels(pool, "busy").set(busy)
    PROCESS_POOL_TASKS.labels(pool, "queued").set(queued)


def record_upstream_pool(upstream: str, *, limit: int, in_use: int) -> None:
    UPSTREAM_CONNECTIONS.labels(upstream, "limit").set(limit)
    UPSTREAM_CONNECTIONS.labels(upstream, "in_use").set(in_use)


# --- per-request metrics


def route_label(scope: Scope) -> str:
    """The route template (``/users/{user_id}``) the router matched, never the raw path."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED_ROUTE


class RequestMetricsMiddleware:
    """Pure ASGI (no task per request, unlike BaseHTTPMiddleware): latency by route and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the server will answer if the app raises before starting a response
        start = time.perf_counter()

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            HTTP_REQUEST_DURATION.labels(scope["method"], route_label(scope), str(status)).observe(
                time.perf_counter() - start, exemplar=trace_exemplar()
            )


# --- periodic sampling of values that are states, not events

Sampler = Callable[[], Awaitable[None] | None]


def add_sampler(app: FastAPI, sampler: Sampler) -> None:
    """Run ``sampler`` (sync or async, cheap) every sampling interval while the app runs.

    E.g. io: ``add_sampler(app, lambda: record_db_pool("async", size=..., checked_out=..., overflow=...))``.
    """
    app.state.metric_samplers.append(sampler)


class MetricsSampler(LoopTask):
    """A task in the lifespan that refreshes the gauges: loop lag, thread tokens, registered samplers."""

    name = "metrics-sampler"

    def __init__(self, app: FastAPI, interval: float = 1.0) -> None:
        super().__init__()
        self.app = app
        self.interval = interval
        self._failed: set[int] = set()

    async def sample_once(self) -> None:
        monitor = getattr(self.app.state, "loop_lag", None)
        if monitor is not None:
            stats = monitor.stats()
            LOOP_LAG.labels("current").set(stats.current)
            LOOP_LAG.labels("p99").set(stats.p99)
            LOOP_LAG.labels("max").set(stats.max)
        limiter = anyio.to_thread.current_default_thread_limiter()
        THREAD_TOKENS.labels("total").set(limiter.total_tokens)
        THREAD_TOKENS.labels("in_use").set(limiter.borrowed_tokens)
        for sampler in list(self.app.state.metric_samplers):
            try:
                result = sampler()
                if inspect.isawaitable(result):
                    async with asyncio.timeout(self.interval):
                        await result
            except Exception:  # a broken sampler must not stop the others
                if id(sampler) not in self._failed:  # once, not every second
                    self._failed.add(id(sampler))
                    log.exception("metrics sampler %r failed", sampler)

    async def _run(self) -> None:
        while True:
            await self.sample_once()
            await asyncio.sleep(self.interval)


# --- exposition


def scrape_registry() -> Any:
    """What ``/metrics`` serves: all workers' files in multiprocess mode, else this process."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])

    # `def`: in multiprocess mode a scrape reads every worker's files; keep that off the loop.
    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics (OpenMetrics with exemplars when the scraper asks for it)."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(scrape_registry()), media_type=content_type)

    return router
