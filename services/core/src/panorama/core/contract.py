"""The API contract, declared once: ports, headers and the request/response bodies of io and compute.

io and compute enforce these models; the gateway accepts the same request models and checks what
it relays against the same response models, so the OpenAPI the gateway publishes is what the
services behind it enforce (``tests/contract/test_openapi.py`` compares the published schemas).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StringConstraints, field_validator

# --- ports and headers -------------------------------------------------------------------------

# Each HTTP service's port, in the chart ("panorama.ports"), the local runner and the acceptance.
PORTS = {"gateway": 8000, "io": 8001, "compute": 8002}

# Seconds the caller will wait: the gateway tells io and compute its budget, they give up first.
DEADLINE_HEADER = "X-Request-Timeout"
DEADLINE_MAX_S = 3600
# The header as io's and compute's routes declare it (absent: their own request_timeout applies).
DeadlineHeader = Annotated[
    float | None,
    Header(
        alias=DEADLINE_HEADER,
        gt=0,
        le=DEADLINE_MAX_S,
        description="seconds the caller will wait (the gateway's budget)",
    ),
]
# Whether io's cache answered a user read (hit, miss, bypass).
CACHE_HEADER = "X-Cache"
# Headers worth passing back from a downstream; hop-by-hop and length headers are not.
RELAYED_HEADERS = ("content-type", "retry-after", "location", "cache-control", CACHE_HEADER.lower())

# --- users (io) --------------------------------------------------------------------------------

# Postgres `integer` ids: a larger number is a 422, not a driver error later.
USER_ID_MAX = 2**31 - 1
PAGE_MAX = 100


def _digits_only(value: object) -> object:
    # Pydantic's lax int parsing strips whitespace: "1\n" would be user 1. An id in a path is the
    # whole segment or nothing (the same full-match rule as job ids).
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("an id is a whole number written in digits only")
    return value


# The validator every user-id path parameter carries (io's and the gateway's UserId).
DIGITS_ONLY = BeforeValidator(_digits_only)

# Deliberately loose: "has one @ with something either side"; real validation is a mail sent.
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")
]
# Postgres text cannot hold NUL: refuse it here (422), not as a database error.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = None


class User(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        # SQLite returns naive datetimes (its CURRENT_TIMESTAMP is UTC); Postgres returns aware ones.
        # Answer the same ISO form, with its zone, whichever database is behind.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UserPage(BaseModel):
    items: list[User]
    limit: int
    offset: int
    total: int


# --- cached values (io, Redis) -----------------------------------------------------------------

CACHE_KEY_PATTERN = r"^[A-Za-z0-9._:-]+$"
CACHE_KEY_MAX = 200


class CachedValue(BaseModel):
    key: str
    value: Any
    ttl_s: int | None = None


class CachedPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="any JSON value")
    ttl_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600, description="seconds; unset: the default TTL")


# --- demo and proxy (io) -----------------------------------------------------------------------


class DemoResult(BaseModel):
    style: str
    delay_s: float
    elapsed_s: float
    detail: str


class ProxyResult(BaseModel):
    url: str
    status: int
    content_type: str | None
    body: str
    truncated: bool
    redirects: list[str]


# --- compute -----------------------------------------------------------------------------------

# The inference model's input width and the largest batch: compute's model is built to this width.
FEATURES = 32
MAX_ROWS = 512

# JSON numbers only: "10" or true is a wrong type, not an n; NaN and infinities are refused.
# Bounded too: 1e300 is finite, but the network overflows on it and would answer NaN.
Feature = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Row = Annotated[list[Feature], Field(min_length=FEATURES, max_length=FEATURES)]


class ComputeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The upper bound is a setting (PANORAMA_MAX_N), checked by compute's route.
    n: StrictInt = Field(ge=0, description="sum the integers below n")


class ComputeResult(BaseModel):
    result: int


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Row] = Field(
        min_length=1, max_length=MAX_ROWS, description=f"1..{MAX_ROWS} rows of exactly {FEATURES} finite numbers"
    )


class InferenceResult(BaseModel):
    model: str
    outputs: list[list[float]]
    labels: list[int]
