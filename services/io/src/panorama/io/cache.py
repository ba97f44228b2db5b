"""The cache behind cache-aside reads and ``/cached/{key}``: Redis, or an in-process TTL cache.

With ``PANORAMA_REDIS_URL`` set the cache is ``redis.asyncio`` with short socket timeouts and no
retries, so a dead Redis costs a read milliseconds and the caller falls back to the database.
Without it an in-process LRU with TTLs stands in (per worker: fine for one machine, not for a fleet).
Every failure surfaces as :class:`CacheUnavailable`; callers decide whether to degrade or answer 503.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from panorama.core.sizing import Plan
from panorama.io.settings import IoSettings


class CacheUnavailable(Exception):
    """The cache could not be reached or did not answer in time."""


class Cache(Protocol):
    kind: str

    async def get(self, key: str) -> Any | None: ...
    async def set(self, key: str, value: Any, ttl: int) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def ttl(self, key: str) -> int | None: ...
    async def claim(self, key: str, ttl_ms: int) -> bool: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class RedisCache:
    """JSON values in Redis; every Redis error becomes :class:`CacheUnavailable`."""

    kind = "redis"

    def __init__(self, url: str, *, socket_timeout: float, max_connections: int, pool_timeout: float) -> None:
        # BlockingConnectionPool: at most max_connections sockets; a caller waits `pool_timeout` for
        # one (a burst queues), then each command has `socket_timeout` (a dead Redis fails fast).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=socket_timeout,
            # A burst opens many connections at once; on a busy node that can take longer than
            # one command. A refused connection fails at once whatever this says.
            socket_connect_timeout=max(socket_timeout, pool_timeout),
        )
        # No retries: the default retries three times, multiplying the cost of an outage per read.
        self._client = aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}") from exc
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl: int) -> None:
        try:
            await self._client.set(key, json.dumps(value, default=str), ex=ttl)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}") from exc

    async def delete(self, *keys: str) -> None:
        try:
            await self._client.delete(*keys)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}") from exc

    async def ttl(self, key: str) -> int | None:
        try:
            seconds = await self._client.ttl(key)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}") from exc
        return seconds if seconds >= 0 else None

    async def claim(self, key: str, ttl_ms: int) -> bool:
        """Take a short lock shared by every worker (``SET NX PX``): True if this caller has it."""
        try:
            return bool(await self._client.set(key, b"1", nx=True, px=ttl_ms))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
        await self._client.connection_pool.disconnect()


class MemoryCache:
    """An in-process LRU with per-entry expiry; the stand-in when no Redis is configured."""

    kind = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _live(self, key: str) -> tuple[float, str] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    async def get(self, key: str) -> Any | None:
        entry = self._live(key)
        # Stored as JSON text so that callers get a copy, exactly as from Redis.
        return None if entry is None else json.loads(entry[1])

    async def set(self, key: str, value: Any, ttl: int) -> None:
        self._data[key] = (time.monotonic() + ttl, json.dumps(value, default=str))
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def ttl(self, key: str) -> int | None:
        entry = self._live(key)
        return None if entry is None else max(0, round(entry[0] - time.monotonic()))

    async def claim(self, key: str, ttl_ms: int) -> bool:
        # One process, one worker: the in-process single flight already coordinates everyone.
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


def make_cache(settings: IoSettings, plan: Plan) -> RedisCache | MemoryCache:
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            socket_timeout=settings.redis_socket_timeout,
            max_connections=plan.redis_connections,
            pool_timeout=plan.pool_timeout,
        )
    return MemoryCache(settings.memory_cache_entries)
