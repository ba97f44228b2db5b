"""Gateway routes: an operation under a timeout budget that answers 504 when the budget runs out."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from panorama.core.errors import Problem
from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(tags=["safe"])


class SafeResult(BaseModel):
    status: str
    delay_s: float
    elapsed_s: float
    budget_s: float


@router.get("/safe", responses={504: {"description": "the operation ran out of its time budget"}})
async def safe(
    io: IoDep,
    settings: SettingsDep,
    delay: Annotated[float, Query(ge=0, le=10, description="how long the operation takes")] = 0.1,
) -> SafeResult:
    """Run an operation (io's ``/demo/async?delay=``) under ``PANORAMA_TIMEOUT_SAFE``; 504 if it overruns."""
    budget = settings.timeout_safe
    start = time.perf_counter()
    try:
        upstream = await io.request("GET", "/demo/async", params={"delay": delay}, timeout=budget)
    except Problem as exc:
        if exc.status != 504:
            raise
        # The upstream's own message names io; the caller of /safe needs to know about the budget.
        raise Problem(
            504,
            f"the operation did not finish within its {budget:g}s budget and was cancelled "
            f"(it needed {delay:g}s); retry with a shorter operation or ask for a larger budget",
            title="Operation timed out",
            extra={"budget_s": budget, "delay_s": delay},
        ) from None
    if upstream.status != 200:
        raise Problem(502, f"the operation failed upstream with status {upstream.status}", title="Bad Gateway")
    return SafeResult(status="completed", delay_s=delay, elapsed_s=time.perf_counter() - start, budget_s=budget)
