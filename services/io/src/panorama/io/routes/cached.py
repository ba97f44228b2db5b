"""Arbitrary JSON values under a key, in Redis (or the in-process cache without Redis)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from panorama.core.contract import CACHE_KEY_MAX, CACHE_KEY_PATTERN, CachedPut, CachedValue
from panorama.core.errors import Problem
from panorama.io.cache import CacheUnavailable
from panorama.io.deps import CacheDep, SettingsDep

router = APIRouter(prefix="/cached", tags=["cached"])

Key = Annotated[str, Path(min_length=1, max_length=CACHE_KEY_MAX, pattern=CACHE_KEY_PATTERN)]
# Namespaced so that a caller's key can never overwrite the users' cache-aside entries.
PREFIX = "cached:"


def _unavailable(exc: CacheUnavailable) -> Problem:
    # Unlike the users' reads there is no database behind these values: no cache, no answer.
    return Problem(503, f"the cache is unavailable ({exc})", title="Cache unavailable", headers={"Retry-After": "1"})


@router.get("/{key}", responses={404: {"description": "no value under this key"}})
async def get_cached(key: Key, cache: CacheDep) -> CachedValue:
    """The value stored under ``key`` and its remaining TTL; 404 if none."""
    try:
        value = await cache.get(PREFIX + key)
        ttl = await cache.ttl(PREFIX + key) if value is not None else None
    except CacheUnavailable as exc:
        raise _unavailable(exc) from None
    if value is None:
        raise Problem(404, f"nothing is cached under {key!r}", title="Not Found")
    return CachedValue(key=key, value=value, ttl_s=ttl)


@router.put("/{key}")
async def put_cached(key: Key, body: CachedPut, cache: CacheDep, settings: SettingsDep) -> CachedValue:
    """Store a JSON value under ``key`` with a TTL (the default TTL unless given)."""
    ttl = body.ttl_s or settings.cache_ttl
    try:
        await cache.set(PREFIX + key, body.value, ttl)
    except CacheUnavailable as exc:
        raise _unavailable(exc) from None
    return CachedValue(key=key, value=body.value, ttl_s=ttl)
