"""POST /compute: the seed's CPU loop in the process pool (or, to compare, the thread pool)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from panorama.compute import tracing
from panorama.compute.child import compute_task
from panorama.compute.deps import DeadlineDep, ProcessPoolDep, SettingsDep, ThreadPoolDep
from panorama.compute.settings import ComputeSettings
from panorama.core.contract import ComputeRequest, ComputeResult

router = APIRouter(tags=["compute"])
PoolName = Literal["process", "thread"]
BUSY = {503: {"description": "pool at capacity or a child died; retry after Retry-After"}}
TIMEOUT = {504: {"description": "the deadline passed; the task was cancelled or stops itself"}}


def check_n(n: int, settings: ComputeSettings) -> None:
    """Refuse an n above the configured maximum with the same 422 as any other bad field."""
    if n > settings.max_n:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "n"),
                    "msg": f"Input should be less than or equal to {settings.max_n} (PANORAMA_MAX_N)",
                    "type": "less_than_equal",
                    "input": n,
                }
            ]
        )


@router.post("/compute", responses={**BUSY, **TIMEOUT})
async def compute(
    body: ComputeRequest,
    request: Request,
    settings: SettingsDep,
    process_pool: ProcessPoolDep,
    thread_pool: ThreadPoolDep,
    deadline: DeadlineDep,
    pool: Annotated[PoolName, Query(description="process (CPU work) or thread (to compare)")] = "process",
) -> ComputeResult:
    """sum(range(n)) by a Python loop, off the event loop, within the request's deadline."""
    check_n(body.n, settings)
    chosen = process_pool if pool == "process" else thread_pool
    parent = tracing.request_context(request.headers)
    with tracing.submit_span("compute.submit", parent, {"compute.n": body.n, "compute.pool": pool}) as carrier:
        result = await chosen.run(compute_task, body.n, deadline, carrier, deadline=deadline)
    return ComputeResult(result=result)
