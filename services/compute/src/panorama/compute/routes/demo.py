"""POST /demo/compute-inline: the anti-pattern, served only with PANORAMA_DEMO_ANTIPATTERNS=true."""

from __future__ import annotations

from fastapi import APIRouter

from panorama.compute.child import sum_below
from panorama.compute.deps import SettingsDep
from panorama.compute.routes.compute import check_n
from panorama.core.contract import ComputeRequest, ComputeResult

router = APIRouter(prefix="/demo", tags=["demo"])


@router.post("/compute-inline")
async def compute_inline(body: ComputeRequest, settings: SettingsDep) -> ComputeResult:
    """The same loop run inside ``async def``: every other request waits while it runs (contrast only)."""
    check_n(body.n, settings)
    # Deliberately blocks the event loop: the loop-lag benchmark measures what that costs. No ruff
    # rule flags a pure-Python loop in `async def` (the ASYNC rules know blocking calls, not CPU),
    # so there is no rule to silence here: a suppression comment would itself fail RUF100.
    return ComputeResult(result=sum_below(body.n))
