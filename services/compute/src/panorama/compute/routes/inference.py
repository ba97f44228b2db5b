"""POST /ml-inference: a small deterministic MLP over a bounded batch, in the process pool."""

from __future__ import annotations

from fastapi import APIRouter, Request

from panorama.compute import tracing
from panorama.compute.child import inference_task
from panorama.compute.deps import DeadlineDep, ProcessPoolDep
from panorama.compute.model import MODEL_NAME
from panorama.compute.routes.compute import BUSY, TIMEOUT
from panorama.core.contract import InferenceRequest, InferenceResult

router = APIRouter(tags=["compute"])


@router.post("/ml-inference", responses={**BUSY, **TIMEOUT})
async def ml_inference(
    body: InferenceRequest, request: Request, process_pool: ProcessPoolDep, deadline: DeadlineDep
) -> InferenceResult:
    """Class probabilities and labels for each input row, computed by numpy in a pool child."""
    parent = tracing.request_context(request.headers)
    with tracing.submit_span("compute.inference.submit", parent, {"compute.rows": len(body.inputs)}) as carrier:
        outputs = await process_pool.run(inference_task, body.inputs, deadline, carrier, deadline=deadline)
    labels = [max(range(len(row)), key=row.__getitem__) for row in outputs]
    return InferenceResult(model=MODEL_NAME, outputs=outputs, labels=labels)
