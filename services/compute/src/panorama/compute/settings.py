"""Compute service settings: input bounds, backpressure, deadlines and the pool's start method."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from panorama.core.settings import PanoramaSettings

StartMethod = Literal["forkserver", "spawn"]


class ComputeSettings(PanoramaSettings):
    max_n: int = Field(default=50_000_000, ge=1, description="largest n POST /compute accepts")
    # Per worker and per pool: beyond this many tasks submitted and not finished, 503 at once.
    max_in_flight: int | None = Field(default=None, ge=1, description="tasks in flight per pool; default 2 x size")
    thread_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="thread pool size (the `?pool=thread` comparison); default: the process pool size",
    )
    request_timeout: float = Field(
        default=30.0, gt=0, description="deadline of a task when X-Request-Timeout is absent, and its cap"
    )
    retry_after: int = Field(default=1, ge=1, description="seconds a 503 asks the caller to wait")
    start_method: StartMethod = Field(
        default="forkserver", description="forkserver or spawn (never fork in a threaded process)"
    )
    # Niceness added to each child so that, with every core busy, the event loop (asleep most of
    # the time, latency-bound) preempts a child as soon as it wakes. It orders processes within
    # the pod's cgroup only; on a shared host it also makes the children yield to everyone else's
    # processes (measured: process-pool throughput halved on the noisy dev box), hence off by default.
    child_nice: int = Field(default=0, ge=0, le=19, description="niceness added to each pool child")
    model_seed: int = Field(default=20_240_601, description="seed of the deterministic inference model")
    # Debug/test aid: spans of the worker and its children appended as JSON lines (one real SDK
    # exporter), used only when no tracer provider has been configured by the telemetry set-up.
    compute_span_file: Path | None = Field(
        default=None, description="debug aid: write pool spans as JSON lines when no OTLP endpoint is set"
    )
    demo_antipatterns: bool = Field(default=False, description="serve POST /demo/compute-inline")
