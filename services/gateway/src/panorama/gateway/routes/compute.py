"""Gateway routes: /compute and /ml-inference, relayed to the compute service within a budget.

The gateway tells compute how long it will wait (``X-Request-Timeout``, sent by ``Upstream.request``
with every call), a little less than its own budget: compute then gives up first, cancels the
queued task and answers a 504 that says what happened, instead of the gateway timing out blind
while the task keeps a core busy.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from panorama.core.contract import (
    ComputeRequest,
    ComputeResult,
    InferenceRequest,
    InferenceResult,
)
from panorama.gateway.deps import ComputeDep, SettingsDep

router = APIRouter(tags=["compute"])

# The request models are compute's own (panorama.core.contract): a body of the wrong shape is a
# 422 here, before it costs a trip. n's maximum is a compute setting: compute checks it.
ERRORS = {
    503: {"description": "compute is at capacity or lost a child; retry after Retry-After"},
    504: {"description": "compute did not finish within the budget"},
}


@router.post("/compute", response_model=ComputeResult, responses=ERRORS)
async def compute(body: ComputeRequest, upstream: ComputeDep, settings: SettingsDep) -> Response:
    """sum(range(n)) computed by a Python loop in compute's process pool."""
    answer = await upstream.request("POST", "/compute", json=body.model_dump(), timeout=settings.timeout_compute)
    return answer.relay(ComputeResult)


@router.post("/ml-inference", response_model=InferenceResult, responses=ERRORS)
async def ml_inference(body: InferenceRequest, upstream: ComputeDep, settings: SettingsDep) -> Response:
    """Class probabilities for each input row, from a small MLP run with numpy in compute's pool."""
    answer = await upstream.request("POST", "/ml-inference", json=body.model_dump(), timeout=settings.timeout_compute)
    return answer.relay(InferenceResult)
