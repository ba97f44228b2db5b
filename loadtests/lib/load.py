"""One aiohttp load generator for every benchmark: bursts, closed loops, percentiles.

aiohttp, not httpx, drives the load: at hundreds of concurrent requests httpx's own pool costs more
CPU than the server under test (section 2's client comparison measures it), and on a 2-core machine
the load generator shares the cores with what it measures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

# One percentile for the services' loop lag and the benchmarks' latencies: nearest rank.
from panorama.core.looplag import percentile

Call = Callable[[], Awaitable[int]]


def session(limit: int = 0, total_timeout: float = 120.0) -> aiohttp.ClientSession:
    """A client session; ``limit=0``: no connection cap, so the load generator is never the queue."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=total_timeout),
    )


async def burst(
    client: aiohttp.ClientSession, url: str, n: int, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``n`` GETs at once: wall time until the last answers, throughput and the status counts.

    The connections are the session's: a fresh session opens ``n`` of them inside the burst (cold),
    a second burst on the same session reuses them (warm, a server's steady state).
    """

    async def one() -> int:
        try:
            async with client.get(url, headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return -1

    start = time.perf_counter()
    statuses = await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - start
    counts = Counter(statuses)
    return {
        "requests": n,
        "ok": counts.get(200, 0),
        "errors": n - counts.get(200, 0),
        "wall_s": round(wall, 3),
        "rps": round(n / wall, 1),
        "statuses": {str(k): v for k, v in sorted(counts.items())},
    }


@dataclass
class LoopResult:
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        ok = self.requests - self.errors
        return {
            "rps": round(ok / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(self.latencies, 99) * 1000, 2),
            "requests": self.requests,
            "errors": self.errors,
        }


async def closed_loop(call: Call, concurrency: int, seconds: float) -> dict[str, float]:
    """``concurrency`` workers sending back to back for ``seconds``: throughput and latency percentiles."""
    result = LoopResult()
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                status = await call()
            except (aiohttp.ClientError, TimeoutError):
                status = -1
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1
            result.errors += status != 200

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - start
    return result.summary()


def get_call(
    client: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None, seen: Counter[str] | None = None
) -> Call:
    """A GET of ``url`` returning its status; counts each answer's ``X-Cache`` header into ``seen``."""

    async def call() -> int:
        async with client.get(url, headers=headers) as resp:
            await resp.read()
            if seen is not None:
                seen[resp.headers.get("X-Cache", "-")] += 1
            return resp.status

    return call


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-key median of several closed-loop summaries (errors summed: one error anywhere counts)."""
    out = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    out["errors"] = sum(int(r["errors"]) for r in runs)
    out["requests"] = sum(int(r["requests"]) for r in runs)
    out["rounds"] = len(runs)
    return out
