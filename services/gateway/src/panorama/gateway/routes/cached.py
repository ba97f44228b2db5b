"""Gateway routes: JSON values under a key, kept in Redis by io."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from panorama.core.contract import CACHE_KEY_MAX, CACHE_KEY_PATTERN, CachedPut, CachedValue
from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(tags=["cached"])

Key = Annotated[str, Path(min_length=1, max_length=CACHE_KEY_MAX, pattern=CACHE_KEY_PATTERN)]


@router.get("/cached/{key}", response_model=CachedValue, responses={404: {"description": "nothing under this key"}})
async def get_cached(key: Key, io: IoDep, settings: SettingsDep) -> Response:
    """The value under ``key`` and its remaining TTL; 503 while the cache is down."""
    upstream = await io.request("GET", f"/cached/{key}", timeout=settings.timeout_default)
    return upstream.relay(CachedValue)


@router.put("/cached/{key}", response_model=CachedValue)
async def put_cached(key: Key, body: CachedPut, io: IoDep, settings: SettingsDep) -> Response:
    """Store a JSON value under ``key`` (optional ``ttl_s``)."""
    payload = body.model_dump(exclude_unset=True)
    upstream = await io.request("PUT", f"/cached/{key}", json=payload, timeout=settings.timeout_default)
    return upstream.relay(CachedValue)
