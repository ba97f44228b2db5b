"""Per-API-key rate limiting: 429 with ``Retry-After`` once a key spends its budget.

Wrong keys are limited too, per client address: once a client has sent ``auth_failures`` wrong
keys in a minute every answer it gets is 429, whatever key it sends (valid or not), so keys cannot
be guessed at the speed of the network.

Counters live in Redis when ``PANORAMA_REDIS_URL`` is set, so every gateway worker and replica
shares one budget per key; otherwise in this process. Keys are hashed before they are stored or
logged. If Redis is unreachable the limiter fails open (logged): an outage of the limiter must
not take the API down with it.

A wrong key is counted and judged in one call to the store (429 once the client is over its budget,
else 401). A valid key is refused too while its client is over the budget, so such a client learns
nothing about any key; a worker reads that standing from the store at most once a second per client
(``STANDING_TTL``). Measured reason: read on every request, it was a Redis round trip for every
authenticated call with the defaults of `make up` and the chart: 364 against 294 µs of the
gateway's CPU per request (docs/benchmarks.md, "The gateway's Redis"). A client that crosses its
budget on another worker may still use a valid key here for up to that second; its wrong keys are
refused at once everywhere.
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

# Seconds a worker reuses what the store said of a client's wrong-key budget (valid keys only).
STANDING_TTL = 1.0
# Clients whose standing a worker remembers at most (past it, the memory starts again).
STANDING_MAX = 10_000


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
        # client -> (read until, when its window frees a slot if it is over the budget, else None)
        self._standing: dict[str, tuple[float, float | None]] = {}
        self.standing_reads = 0  # calls to the store for a standing (the tests count them)

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
        """429 if ``client`` has spent its minute's worth of wrong keys (for a request with a valid
        key: nothing is counted). The store's answer is reused for ``STANDING_TTL`` seconds."""
        if self.failure_item is None:
            return
        standing = self._standing.get(client)
        if standing is None or standing[0] <= time.monotonic():
            standing = self._remember(client, await self._over_budget_until(client))
        if standing[1] is not None:
            raise self._too_many_failures(standing[1])

    async def _over_budget_until(self, client: str) -> float | None:
        """When ``client``'s window frees a slot if it is over its wrong-key budget, else None."""
        assert self.failure_item is not None
        self.standing_reads += 1
        try:
            if await self.limiter.test(self.failure_item, *_failures(client)):
                return None
            stats = await self.limiter.get_window_stats(self.failure_item, *_failures(client))
        except Exception as exc:  # noqa: BLE001 - fail open, as for the per-key limit
            log.warning("rate limiter storage unavailable, allowing request: %s", type(exc).__name__)
            return None
        return stats.reset_time

    async def record_auth_failure(self, client: str) -> None:
        """Count one wrong key sent by ``client``; 429 if its budget was already spent (then the key
        is not counted, and the caller must not answer 401: the client learns nothing of it)."""
        if self.failure_item is None:
            return
        try:
            if await self.limiter.hit(self.failure_item, *_failures(client)):
                return
            stats = await self.limiter.get_window_stats(self.failure_item, *_failures(client))
        except Exception as exc:  # noqa: BLE001 - fail open
            log.warning("rate limiter storage unavailable, failure not counted: %s", type(exc).__name__)
            return
        raise self._too_many_failures(self._remember(client, stats.reset_time)[1])

    def _remember(self, client: str, over_until: float | None) -> tuple[float, float | None]:
        """Keep what the store said of ``client`` for ``STANDING_TTL`` seconds; returns it."""
        if len(self._standing) >= STANDING_MAX:
            self._standing.clear()
        standing = self._standing[client] = (time.monotonic() + STANDING_TTL, over_until)
        return standing

    def _too_many_failures(self, reset_time: float | None) -> Problem:
        assert reset_time is not None
        return _too_many(f"too many wrong API keys from this client (limit {self.failure_item})", reset_time)

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


def _failures(client: str) -> tuple[str, str]:
    """The wrong-key window's identifiers for ``client`` in the store."""
    return ("auth-failures", client)


def _too_many(reason: str, reset_time: float) -> Problem:
    retry_after = max(1, math.ceil(reset_time - time.time()))
    return Problem(
        429, f"{reason}; retry in {retry_after}s", title="Too Many Requests", headers={"Retry-After": str(retry_after)}
    )
