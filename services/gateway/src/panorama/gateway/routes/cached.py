"""Gateway routes: JSON values under a key, kept in Redis by io."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(tags=["cached"])

Key = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]


class CachedPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="any JSON value")
    ttl_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)


class CachedValue(BaseModel):
    key: str
    value: Any
    ttl_s: int | None = None


@router.get("/cached/{key}", response_model=CachedValue, responses={404: {"description": "nothing under this key"}})
async def get_cached(key: Key, io: IoDep, settings: SettingsDep) -> Response:
    """The value under ``key`` and its remaining TTL; 503 while the cache is down."""
    upstream = await io.request("GET", f"/cached/{key}", timeout=settings.timeout_default)
    return upstream.relay()


@router.put("/cached/{key}", response_model=CachedValue)
async def put_cached(key: Key, body: CachedPut, io: IoDep, settings: SettingsDep) -> Response:
    """Store a JSON value under ``key`` (optional ``ttl_s``)."""
    payload = body.model_dump(exclude_unset=True)
    upstream = await io.request("PUT", f"/cached/{key}", json=payload, timeout=settings.timeout_default)
    return upstream.relay()
