"""compute's pool gauges: ``panorama_process_pool_tasks{pool="process"|"thread"}`` sampled once a second.

``busy`` is tasks handed to the executor and not finished; ``queued`` waits on the pool's
semaphore for a free worker (see :mod:`panorama.compute.pool`).
"""

from __future__ import annotations

from fastapi import FastAPI

from panorama.compute.pool import Pool
from panorama.core.metrics import add_sampler, record_process_pool


def _sample(pool: Pool) -> None:
    status = pool.report()
    record_process_pool(pool.kind, size=status.size, busy=status.busy, queued=status.queued)


def wire_compute_observability(app: FastAPI, *pools: Pool) -> None:
    """One series per pool, labelled by its kind: ``pool="process"``, ``pool="thread"``."""
    for pool in pools:
        add_sampler(app, lambda pool=pool: _sample(pool))
