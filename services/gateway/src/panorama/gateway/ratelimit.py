"""Per-API-key rate limiting: 429 with ``Retry-After`` once a key spends its budget.

Counters live in Redis when ``PANORAMA_REDIS_URL`` is set, so every gateway worker and replica
shares one budget per key; otherwise in this process. Keys are hashed before they are stored or
logged. If Redis is unreachable the limiter fails open (logged): an outage of the limiter must
not take the API down with it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from panorama.core.errors import Problem

log = logging.getLogger(__name__)


class RateLimiter:
    """Built without I/O; the Redis connection opens on first use inside the running loop."""

    def __init__(self, limit: str | None, redis_url: str | None) -> None:
        self.item: RateLimitItem | None = parse(limit) if limit else None
        storage: Storage
        if redis_url:
            storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1),
                implementation="redispy",
                key_prefix="panorama:ratelimit",
                socket_timeout=0.25,
                socket_connect_timeout=0.25,
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    async def aclose(self) -> None:
        """Close the Redis connections (limits exposes no close; its redis-py client is ``bridge.storage``)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()

    @staticmethod
    def bucket(api_key: str) -> str:
        return hashlib.sha256(api_key.encode()).hexdigest()[:24]

    async def check(self, api_key: str) -> None:
        """Count one request for ``api_key``; raise a 429 problem when over the limit."""
        if self.item is None:
            return
        bucket = self.bucket(api_key)
        try:
            if await self.limiter.hit(self.item, bucket):
                return
            stats = await self.limiter.get_window_stats(self.item, bucket)
        except Exception as exc:  # noqa: BLE001 - fail open on any storage error, but say so
            log.warning("rate limiter storage unavailable, allowing request: %s", type(exc).__name__)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise Problem(
            429,
            f"rate limit of {self.item} per API key exceeded; retry in {retry_after}s",
            title="Too Many Requests",
            headers={"Retry-After": str(retry_after)},
        )
