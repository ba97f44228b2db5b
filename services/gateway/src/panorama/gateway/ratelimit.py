"""Per-API-key rate limiting: 429 with ``Retry-After`` once a key spends its budget.

Wrong keys are limited too, per client address: once a client has sent ``auth_failures`` wrong
keys in a minute it gets 429 before its next key is even compared, so keys cannot be guessed at
the speed of the network.

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

    def __init__(self, limit: str | None, redis_url: str | None, *, auth_failures: int = 0) -> None:
        self.item: RateLimitItem | None = parse(limit) if limit else None
        self.failure_item: RateLimitItem | None = parse(f"{auth_failures}/minute") if auth_failures else None
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

    async def refuse_failing_client(self, client: str) -> None:
        """429 if ``client`` already sent its minute's worth of wrong keys (nothing is counted here)."""
        if self.failure_item is None:
            return
        bucket = ("auth-failures", client)
        try:
            if await self.limiter.test(self.failure_item, *bucket):
                return
            stats = await self.limiter.get_window_stats(self.failure_item, *bucket)
        except Exception as exc:  # noqa: BLE001 - fail open, as for the per-key limit
            log.warning("rate limiter storage unavailable, allowing request: %s", type(exc).__name__)
            return
        raise _too_many(f"too many wrong API keys from this client (limit {self.failure_item})", stats.reset_time)

    async def record_auth_failure(self, client: str) -> None:
        """Count one wrong key sent by ``client``."""
        if self.failure_item is None:
            return
        try:
            await self.limiter.hit(self.failure_item, "auth-failures", client)
        except Exception as exc:  # noqa: BLE001 - fail open
            log.warning("rate limiter storage unavailable, failure not counted: %s", type(exc).__name__)

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
        raise _too_many(f"rate limit of {self.item} per API key exceeded", stats.reset_time)


def _too_many(reason: str, reset_time: float) -> Problem:
    retry_after = max(1, math.ceil(reset_time - time.time()))
    return Problem(
        429, f"{reason}; retry in {retry_after}s", title="Too Many Requests", headers={"Retry-After": str(retry_after)}
    )
