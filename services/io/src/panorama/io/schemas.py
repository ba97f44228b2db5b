"""Request and response bodies of the I/O service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

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


class UserOut(BaseModel):
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
    items: list[UserOut]
    limit: int
    offset: int
    total: int


class CachedValue(BaseModel):
    key: str
    value: Any
    ttl_s: int | None = None


class CachedPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="any JSON value")
    ttl_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600, description="seconds; unset: the default TTL")


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
