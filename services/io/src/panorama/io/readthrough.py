"""Read-through caching that a burst or an expiry under load cannot turn into a stampede.

- **One loader per key.** Concurrent misses for the same key in a worker share one load (a task
  the first miss starts; the others await it, shielded, so a caller that gives up cancels only
  its own wait). Across workers a short Redis lock (``SET NX PX``) lets one worker load while the
  others poll the cache for its result, briefly, before loading themselves.
- **Refresh ahead.** Entries are ``{"value": ..., "refresh_at": <epoch s>}``, stored for the TTL;
  in the last 20 % of it the first request to see the entry starts one background refresh (again
  one per key, and one per fleet through a Redis claim) while every request, that one included,
  gets the cached value at once. A hot key therefore never expires under load.

Loaders must not borrow the request's resources (its DB session closes when the request ends,
and a refresh outlives it): each opens what it needs. A loader that returns ``None`` (not found)
is not cached; one that raises passes the error to every request that waited for it.

Metrics (:mod:`panorama.core.metrics`): ``panorama_cache_loads_total{cache, cause}`` counts the
loads run (one query each) by cause, ``miss``, ``refresh`` or ``bypass`` (the cache was down), and
``panorama_cache_coalesced_total{cache}`` the misses that joined a running load instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from panorama.core.metrics import CACHE_COALESCED, CACHE_LOADS
from panorama.io.cache import Cache, CacheUnavailable

log = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[Any]]
REFRESH_FRACTION = 0.2


class ReadThrough:
    """``await ReadThrough(cache, ttl=60, name="users").get(key, loader)`` -> ``(value, "hit" | "miss" | "bypass")``.

    ``name`` labels its metrics (what it caches: ``users``).
    """

    def __init__(
        self,
        cache: Cache,
        *,
        ttl: int,
        name: str,
        refresh_fraction: float = REFRESH_FRACTION,
        lock_ms: int = 3000,
        lock_wait: float = 2.0,
        poll_interval: float = 0.02,
    ) -> None:
        self.cache = cache
        self.ttl = ttl
        self.refresh_fraction = refresh_fraction
        self.lock_ms = lock_ms
        self.lock_wait = lock_wait
        self.poll_interval = poll_interval
        self._loads: dict[str, asyncio.Task[Any]] = {}
        self._refreshes: dict[str, asyncio.Task[None]] = {}
        # This instance's counts (the tests read them); the metrics add up every worker's.
        self.coalesced = 0
        self.refreshes = 0
        self._loads_by = {cause: CACHE_LOADS.labels(name, cause) for cause in ("miss", "refresh", "bypass")}
        self._coalesced = CACHE_COALESCED.labels(name)  # every series exported from the start, at 0

    def entry(self, value: Any) -> dict[str, Any]:
        return {"value": value, "refresh_at": time.time() + self.ttl * (1 - self.refresh_fraction)}

    async def get(self, key: str, loader: Loader) -> tuple[Any, str]:
        try:
            entry = await self.cache.get(key)
        except CacheUnavailable as exc:
            log.warning("cache read of %s failed, reading the database: %s", key, exc)
            return await self._single_flight(key, loader, cache_up=False), "bypass"
        if isinstance(entry, dict) and "value" in entry and "refresh_at" in entry:
            if time.time() >= entry["refresh_at"] and key not in self._refreshes:
                self._start_refresh(key, loader)
            return entry["value"], "hit"
        return await self._single_flight(key, loader, cache_up=True), "miss"

    async def _single_flight(self, key: str, loader: Loader, *, cache_up: bool) -> Any:
        task = self._loads.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, loader, cache_up=cache_up))
            self._loads[key] = task
            task.add_done_callback(lambda _t: self._loads.pop(key, None))
        else:
            self.coalesced += 1
            self._coalesced.inc()
        # Shielded: one caller's cancellation (its client left, its budget ran out) ends its own
        # wait, not the load the others are waiting for.
        return await asyncio.shield(task)

    async def _load(self, key: str, loader: Loader, *, cache_up: bool) -> Any:
        lock = f"lock:{key}"
        if not cache_up:
            self._loads_by["bypass"].inc()
            return await loader()
        if await self._claim(lock, self.lock_ms):
            # Double check: another worker may have stored the value (then released its lock)
            # between our miss and our claim.
            cached = await self._cached(key)
            if cached is not None:
                await self._release(lock)
                return cached
        else:
            # Another worker is loading this key: its result will be in the cache shortly.
            deadline = time.monotonic() + self.lock_wait
            while time.monotonic() < deadline:
                await asyncio.sleep(self.poll_interval)
                cached = await self._cached(key)
                if cached is not None:
                    return cached
            if not await self._claim(lock, self.lock_ms):
                log.info("%s: another worker holds the load lock past %gs; loading too", key, self.lock_wait)
        try:
            self._loads_by["miss"].inc()
            value = await loader()
            if value is not None:
                await self._store(key, value)
            return value
        finally:
            await self._release(lock)

    async def _cached(self, key: str) -> Any | None:
        with contextlib.suppress(CacheUnavailable):
            entry = await self.cache.get(key)
            if isinstance(entry, dict) and "value" in entry:
                return entry["value"]
        return None

    async def _release(self, lock: str) -> None:
        with contextlib.suppress(CacheUnavailable):
            await self.cache.delete(lock)

    async def _store(self, key: str, value: Any) -> None:
        try:
            await self.cache.set(key, self.entry(value), self.ttl)
        except CacheUnavailable as exc:
            log.warning("cache write of %s failed: %s", key, exc)

    async def _claim(self, name: str, ttl_ms: int) -> bool:
        try:
            return await self.cache.claim(name, ttl_ms)
        except CacheUnavailable:
            return True  # no cache, no fleet to coordinate with: load

    def _start_refresh(self, key: str, loader: Loader) -> None:
        task = asyncio.create_task(self._refresh(key, loader))
        self._refreshes[key] = task
        task.add_done_callback(lambda _t: self._refreshes.pop(key, None))

    async def _refresh(self, key: str, loader: Loader) -> None:
        # One refresh per fleet: the claim lasts until the entry would have expired anyway.
        if not await self._claim(f"refresh:{key}", max(1, round(self.ttl * self.refresh_fraction * 1000))):
            return
        try:
            self.refreshes += 1
            self._loads_by["refresh"].inc()
            value = await loader()
        except Exception as exc:  # noqa: BLE001 - the cached value stays; the next window retries
            log.warning("refresh of %s failed, serving the cached value: %s", key, type(exc).__name__)
            return
        if value is None:
            with contextlib.suppress(CacheUnavailable):
                await self.cache.delete(key)
        else:
            await self._store(key, value)

    async def close(self) -> None:
        """Wait briefly for background refreshes (the lifespan ends before the cache closes)."""
        pending = list(self._refreshes.values())
        if pending:
            await asyncio.wait(pending, timeout=2)
        for task in pending:
            task.cancel()
