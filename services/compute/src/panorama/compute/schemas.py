"""Request and response bodies of the compute routes; the bounds are part of the contract."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from panorama.compute.model import FEATURES, MODEL_NAME

MAX_ROWS = 512

# JSON numbers only: "10" or true is a wrong type, not an n; NaN and infinities are refused.
# Bounded too: 1e300 is finite, but the network overflows on it and would answer NaN.
Feature = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Row = Annotated[list[Feature], Field(min_length=FEATURES, max_length=FEATURES)]


class ComputeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The upper bound is a setting (PANORAMA_MAX_N), checked by the route.
    n: StrictInt = Field(ge=0, description="sum the integers below n")


class ComputeResult(BaseModel):
    result: int


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Row] = Field(
        min_length=1, max_length=MAX_ROWS, description=f"1..{MAX_ROWS} rows of exactly {FEATURES} finite numbers"
    )


class InferenceResult(BaseModel):
    model: str = MODEL_NAME
    outputs: list[list[float]]
    labels: list[int]
