"""Gateway routes: /compute and /ml-inference, relayed to the compute service within a budget.

The gateway tells compute how long it will wait (``X-Request-Timeout``), a little less than its
own budget: compute then gives up first, cancels the queued task and answers a 504 that says
what happened, instead of the gateway timing out blind while the task keeps a core busy.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from panorama.gateway.deps import ComputeDep, SettingsDep

router = APIRouter(tags=["compute"])

DEADLINE_HEADER = "X-Request-Timeout"
# Compute checks the exact shape (rows of its model's width) and n's maximum; the gateway only
# bounds the size so that it never parses an unbounded body on its own loop.
MAX_ROWS = 512
MAX_COLUMNS = 256
ERRORS = {
    503: {"description": "compute is at capacity or lost a child; retry after Retry-After"},
    504: {"description": "compute did not finish within the budget"},
}


class ComputeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: StrictInt = Field(ge=0, description="sum the integers below n (compute sets the maximum)")


class ComputeResult(BaseModel):
    result: int


Row = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=1, max_length=MAX_COLUMNS)]


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Row] = Field(min_length=1, max_length=MAX_ROWS, description="rows of the model's input width")


class InferenceResult(BaseModel):
    model: str
    outputs: list[list[float]]
    labels: list[int]


def downstream_timeout(budget: float) -> float:
    """What compute is told it has: the budget less the time to relay its answer back."""
    return max(budget - 0.5, budget * 0.8)


@router.post("/compute", response_model=ComputeResult, responses=ERRORS)
async def compute(body: ComputeRequest, upstream: ComputeDep, settings: SettingsDep) -> Response:
    """sum(range(n)) computed by a Python loop in compute's process pool."""
    budget = settings.timeout_compute
    headers = {DEADLINE_HEADER: f"{downstream_timeout(budget):.3f}"}
    answer = await upstream.request("POST", "/compute", json=body.model_dump(), headers=headers, timeout=budget)
    return answer.relay()


@router.post("/ml-inference", response_model=InferenceResult, responses=ERRORS)
async def ml_inference(body: InferenceRequest, upstream: ComputeDep, settings: SettingsDep) -> Response:
    """Class probabilities for each input row, from a small MLP run with numpy in compute's pool."""
    budget = settings.timeout_compute
    headers = {DEADLINE_HEADER: f"{downstream_timeout(budget):.3f}"}
    answer = await upstream.request("POST", "/ml-inference", json=body.model_dump(), headers=headers, timeout=budget)
    return answer.relay()
