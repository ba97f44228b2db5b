"""GET /debug/pool and POST /debug/loop/reset (core serves GET /debug/loop and /debug/plan)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from panorama.compute.deps import ProcessPoolDep, ThreadPoolDep
from panorama.compute.pool import LaneReport, ProcessLaneReport

router = APIRouter(prefix="/debug", tags=["debug"])


class PoolReport(ProcessLaneReport):
    """The process pool's figures at the top level, the thread pool's beside them."""

    thread: LaneReport


class ResetReport(BaseModel):
    discarded_samples: int


@router.get("/pool")
async def pool_status(processes: ProcessPoolDep, threads: ThreadPoolDep) -> PoolReport:
    """Busy, queued, in flight and capacity of each pool; the process pool's start method and pids."""
    return PoolReport(**processes.report().model_dump(), thread=threads.report())


@router.post("/loop/reset")
async def reset_loop_lag(request: Request) -> ResetReport:
    """Forget the loop-lag samples so the next GET /debug/loop measures one phase of a benchmark."""
    monitor = request.app.state.loop_lag
    discarded = monitor.stats().samples
    monitor.reset()
    return ResetReport(discarded_samples=discarded)
