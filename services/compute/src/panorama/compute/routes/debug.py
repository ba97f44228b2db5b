"""GET /debug/pool and POST /debug/loop/reset (core serves GET /debug/loop and /debug/plan)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from panorama.compute.deps import ProcessPoolDep, ThreadPoolDep
from panorama.compute.pool import PoolStatus, ProcessPoolStatus

router = APIRouter(prefix="/debug", tags=["debug"])


class PoolReport(ProcessPoolStatus):
    """The process pool's figures at the top level, the thread pool's beside them."""

    thread: PoolStatus


class ResetReport(BaseModel):
    discarded_samples: int


@router.get("/pool")
async def pool_status(process_pool: ProcessPoolDep, thread_pool: ThreadPoolDep) -> PoolReport:
    """Busy, queued, in flight and capacity of each pool; the process pool's start method and pids."""
    return PoolReport(**process_pool.report().model_dump(), thread=thread_pool.report())


@router.post("/loop/reset")
async def reset_loop_lag(request: Request) -> ResetReport:
    """Forget the loop-lag samples so the next GET /debug/loop measures one phase of a benchmark."""
    monitor = request.app.state.loop_lag
    discarded = monitor.stats().samples
    monitor.reset()
    return ResetReport(discarded_samples=discarded)
