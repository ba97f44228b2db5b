"""compute's pool gauges: ``panorama_process_pool_tasks{pool="cpu"|"medium"}`` sampled once a second.

``busy`` is tasks handed to the executor and not finished; ``queued`` waits on the lane's
semaphore for a free worker (see :mod:`panorama.compute.pool`).
"""

from __future__ import annotations

from fastapi import FastAPI

from panorama.compute.pool import Lane
from panorama.core.metrics import add_sampler, record_process_pool


def _sample(name: str, lane: Lane) -> None:
    report = lane.report()
    record_process_pool(name, size=report.size, busy=report.busy, queued=report.queued)


def wire_compute_observability(app: FastAPI, processes: Lane, threads: Lane) -> None:
    add_sampler(app, lambda: _sample("cpu", processes))
    add_sampler(app, lambda: _sample("medium", threads))
