"""Sections 1-4 of ``make bench``: the HTTP services measured side by side, one worker each unless stated.

Each function takes base URLs of services already running and returns plain dicts (JSON as is).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from panorama.core.cpu import affinity_cpus

from . import cpuuse, wrk
from .load import Call, burst, closed_loop, get_call, median_of, session
from .stack import HEADERS

SWEEP = (100, 500, 1000)
GOAL_ASYNC_1000_S = 2.0
GOAL_ASYNC_OVER_SYNC = 10.0
GOAL_GATEWAY_SHARE = 0.9  # issue 15: the gateway keeps at least 90 % of direct io (was 50 %)
GOAL_CACHE_OVER_DB = 1.5


def cycling_get(client: aiohttp.ClientSession, urls: Iterable[str], seen: Counter[str]) -> Call:
    """GET the next of ``urls`` (round robin) per call; counts the ``X-Cache`` answers into ``seen``."""
    ring = itertools.cycle(list(urls))

    async def call() -> int:
        async with client.get(next(ring), headers=HEADERS) as resp:
            await resp.read()
            seen[resp.headers.get("X-Cache", "-")] += 1
            return resp.status

    return call


async def health_while(client: aiohttp.ClientSession, io: str, path: str) -> float:
    """Seconds ``/healthz`` on io takes while one ``path`` request is in flight on the same worker."""

    async def slow() -> None:
        async with client.get(f"{io}{path}", headers=HEADERS) as resp:
            await resp.read()

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.2)  # let the slow request reach its handler
    start = time.perf_counter()
    async with client.get(f"{io}/healthz") as resp:
        await resp.read()
    elapsed = time.perf_counter() - start
    await task
    return round(elapsed, 3)


async def through_gateway(gateway: str, io: str) -> dict[str, Any]:
    """Issue 3's claims: 1000 concurrent async 1 s requests through the gateway (one worker each), and
    a blocking handler stalls the whole worker (``/healthz`` waits) where an awaiting one does not."""
    meter = cpuuse.CpuMeter({"gateway": gateway, "io": io}, own=True)
    async with session(total_timeout=300) as client:
        cold = await burst(client, f"{gateway}/demo/async?delay=1", 1000, headers=HEADERS)
        start = meter.start()
        warm = await burst(client, f"{gateway}/demo/async?delay=1", 1000, headers=HEADERS)
        # What the warm burst cost: the gateway's one worker can give it one core at most.
        warm["cpu_s"] = {k: round(v, 3) for k, v in meter.spent(start).items()}
    async with session(total_timeout=30) as client:
        during_async = [await health_while(client, io, "/demo/async?delay=1") for _ in range(3)]
        during_blocking = [await health_while(client, io, "/demo/blocking?delay=1") for _ in range(3)]
    return {
        "async_1000_via_gateway": {**warm, "cold_wall_s": cold["wall_s"], "cold_errors": cold["errors"]},
        "healthz_s_during_async_median": statistics.median(during_async),
        "healthz_s_during_blocking_median": statistics.median(during_blocking),
    }


async def handler_styles(io: str, *, sync_cap: int, blocking_cap: int, gateway: str | None = None) -> dict[str, Any]:
    """Section 1: completion time of N concurrent ``?delay=1`` requests per handler style, on one io worker.

    ``/demo/sync`` is measured up to ``sync_cap`` and ``/demo/blocking`` at ``blocking_cap`` only (its
    time is N x 1 s: 1000 s at N=1000); larger N are extrapolated from the measured throughput and
    marked ``extrapolated``.
    """
    async with session(total_timeout=30) as client, client.get(f"{io}/debug/loop") as resp:
        tokens = int((await resp.json())["thread_tokens"])
    out: dict[str, Any] = {"thread_tokens": tokens, "delay_s": 1.0, "workers": 1, "rows": []}
    for n in SWEEP:
        async with session(total_timeout=300) as client:
            cold = await burst(client, f"{io}/demo/async?delay=1", n)
            warm = await burst(client, f"{io}/demo/async?delay=1", n)
        out["rows"].append({"style": "async", "n": n, **warm, "cold_wall_s": cold["wall_s"], "extrapolated": False})
    for style, cap in (("sync", sync_cap), ("blocking", blocking_cap)):
        measured_rps = 0.0
        for n in sorted({*[n for n in SWEEP if n <= cap], cap}):
            async with session(total_timeout=n * 1.5 + 60) as client:
                row = await burst(client, f"{io}/demo/{style}?delay=1", n)
            measured_rps = row["rps"]
            out["rows"].append({"style": style, "n": n, **row, "extrapolated": False})
        for n in (n for n in SWEEP if n > cap):
            wall = n / measured_rps
            out["rows"].append(
                {
                    "style": style,
                    "n": n,
                    "wall_s": round(wall, 1),
                    "rps": measured_rps,
                    "requests": n,
                    "ok": None,
                    "errors": None,
                    "extrapolated": True,
                    "from_n": cap,
                }
            )
    by = {(r["style"], r["n"]): r for r in out["rows"]}
    a1000, s1000 = by[("async", 1000)], by[("sync", 1000)]
    out["goal"] = {
        "async_1000_wall_s": a1000["wall_s"],
        "async_1000_cold_wall_s": a1000["cold_wall_s"],
        "async_over_sync_rps": round(a1000["rps"] / s1000["rps"], 1),
        "sync_rps_measured_at_n": s1000.get("from_n", 1000),
        "met": a1000["wall_s"] < GOAL_ASYNC_1000_S
        and a1000["errors"] == 0
        and a1000["rps"] / s1000["rps"] >= GOAL_ASYNC_OVER_SYNC,
    }
    if gateway:
        out["via_gateway"] = await through_gateway(gateway, io)
    return out


async def alternate(calls: Mapping[str, Call], concurrency: int, seconds: float, rounds: int) -> dict[str, Any]:
    """Closed loops of each call in turn, ``rounds`` times (the same noise for all); medians per call."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: connections, caches, the first-request costs
        await closed_loop(call, concurrency, 0.5)
    for _ in range(rounds):
        for name, call in calls.items():
            runs[name].append(await closed_loop(call, concurrency, seconds))
    return {name: median_of(r) for name, r in runs.items()}


async def gateway_overhead(
    gateway: str, io: str, user_id: int, *, seconds: float, rounds: int, redis: str | None = None
) -> dict[str, Any]:
    """Section 2: ``GET /users/{id}`` (a cache hit) through the gateway vs. straight to io, same concurrency.

    Driven by wrk when it is installed (see ``lib/wrk.py``: a Python client would take one of the
    two cores the services share), else by the aiohttp loop; ``load_generator`` says which."""
    concurrency = 64
    targets = {"gateway": f"{gateway}/users/{user_id}", "io_direct": f"{io}/users/{user_id}"}
    services = {"gateway": gateway, "io": io} | ({"redis": redis} if redis else {})
    result = await alternate_urls(targets, concurrency, seconds, rounds, services=services)
    seen = Counter[str]()
    for name in targets:
        seen.update(result[name].pop("x_cache", {}))
    share = result["gateway"]["rps"] / result["io_direct"]["rps"]
    out = {
        "path": "GET /users/{id} (Redis cache hit)",
        "concurrency": concurrency,
        "seconds": seconds,
        "load_generator": result.pop("load_generator"),
        **result,
        "x_cache": dict(seen),
        "gateway_share_of_direct_rps": round(share, 2),
        "p50_overhead_ms": round(result["gateway"]["p50_ms"] - result["io_direct"]["p50_ms"], 2),
        "goal": {"value": round(share, 2), "target": GOAL_GATEWAY_SHARE, "met": share >= GOAL_GATEWAY_SHARE},
    }
    if "cpu_us_io" in result["gateway"]:
        out["cpu_bound"] = cpu_bound(result["gateway"], result["io_direct"], affinity_cpus())
    return out


def cpu_bound(via: Mapping[str, float], direct: Mapping[str, float], cores: int) -> dict[str, Any]:
    """What bounds section 2's share on this host, from the CPU its rounds spent per request.

    Direct, io's one worker can use at most one core: ``1e6 / cpu_us_io`` requests a second. Via the
    gateway, the gateway, io and wrk share the host's ``cores``: at most ``cores * 1e6 /`` (their CPU
    per request together, Redis's too when it was measured). The ratio of the two is the share this
    host allows whatever the services wait on; the kernel's work outside the processes comes on top,
    so it is a ceiling."""
    via_us = sum(v for k, v in via.items() if k.startswith("cpu_us_"))
    direct_cap = 1e6 / direct["cpu_us_io"]
    via_cap = cores * 1e6 / via_us
    return {
        "cores": cores,
        "via_cpu_us_per_request": round(via_us, 1),
        "direct_io_worker_cores_busy": round(direct["rps"] * direct["cpu_us_io"] / 1e6, 2),
        "via_host_cores_busy": via["host_cores_busy"],
        "share_ceiling": round(min(via_cap, direct_cap) / direct_cap, 2),
    }


async def client_comparison(url: str, *, concurrencies: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """aiohttp vs. httpx vs. httpx over aiohttp's transport as the client of io: the gateway's choice."""
    out: dict[str, Any] = {"target": "io GET /users/{id}", "seconds": seconds, "rows": []}
    for c in concurrencies:
        limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
        async with (
            session(limit=c) as client,
            httpx.AsyncClient(limits=limits, timeout=30) as plain,
            httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=30) as bridged,
        ):

            def via_httpx(h: httpx.AsyncClient) -> Call:
                async def call() -> int:
                    try:
                        return (await h.get(url, headers=HEADERS)).status_code
                    except httpx.HTTPError:
                        return -1

                return call

            calls = {
                "aiohttp": cycling_get(client, [url], Counter()),
                "httpx": via_httpx(plain),
                "httpx-aiohttp": via_httpx(bridged),
            }
            result = await alternate(calls, c, seconds, 1)
        for name, r in result.items():
            out["rows"].append({"client": name, "concurrency": c, **r})
    return out


async def database_paths(
    io_cached: str, io_uncached: str, ids: list[int], *, concurrencies: tuple[int, ...], seconds: float, rounds: int
) -> dict[str, Any]:
    """Section 3: one user by id on async SQLAlchemy+asyncpg vs. ``def`` + psycopg vs. a Redis cache hit.

    The async DB path runs on an io whose in-process cache holds one entry while the ids cycle, so
    every read misses it (checked: ``X-Cache: miss`` counted) and goes to Postgres; the cache stays in
    the path at the cost of one dict lookup. The hit path reads 100 ids already in Redis.
    """
    hot = ids[:100]
    out: dict[str, Any] = {"rows": [], "seconds": seconds, "rounds": rounds}
    seen = {"async_db": Counter[str](), "sync_db": Counter[str](), "cache_hit": Counter[str]()}
    for c in concurrencies:
        async with session(limit=c) as client:
            for user_id in hot:  # into Redis
                async with client.get(f"{io_cached}/users/{user_id}", headers=HEADERS) as resp:
                    await resp.read()
            calls = {
                "async_db": cycling_get(client, [f"{io_uncached}/users/{i}" for i in ids], seen["async_db"]),
                "sync_db": cycling_get(client, [f"{io_cached}/sync/users/{i}" for i in ids], seen["sync_db"]),
                "cache_hit": cycling_get(client, [f"{io_cached}/users/{i}" for i in hot], seen["cache_hit"]),
            }
            result = await alternate(calls, c, seconds, rounds)
        for name, r in result.items():
            out["rows"].append({"path": name, "concurrency": c, **r})
    out["x_cache"] = {name: dict(counter) for name, counter in seen.items()}
    by = {(r["path"], r["concurrency"]): r for r in out["rows"]}
    ratios = {
        c: {
            "cache_over_async_db": round(by[("cache_hit", c)]["rps"] / by[("async_db", c)]["rps"], 2),
            "cache_over_sync_db": round(by[("cache_hit", c)]["rps"] / by[("sync_db", c)]["rps"], 2),
            "async_over_sync_db": round(by[("async_db", c)]["rps"] / by[("sync_db", c)]["rps"], 2),
        }
        for c in concurrencies
    }
    out["ratios"] = ratios
    worst = min(r["cache_over_async_db"] for r in ratios.values())
    out["goal"] = {
        "value": worst,
        "target": GOAL_CACHE_OVER_DB,
        "met": worst >= GOAL_CACHE_OVER_DB,
        "what": "cache hit / async DB path throughput, lowest over c",
    }
    return out


async def worker_scaling(one: str, two: str, *, seconds: float, rounds: int) -> dict[str, Any]:
    """Section 4: the same load on io with one and with two gunicorn workers.

    ``GET /users?limit=100``: a page of 100 rows serialised per request costs the server several
    milliseconds of CPU and the client almost none, so the server, not the load generator sharing
    the two cores, is what saturates.
    """
    concurrency = 32
    seen: Counter[str] = Counter()
    async with session(limit=concurrency) as client:
        calls = {
            "1_worker": cycling_get(client, [f"{one}/users?limit=100"], seen),
            "2_workers": cycling_get(client, [f"{two}/users?limit=100"], seen),
        }
        result = await alternate(calls, concurrency, seconds, rounds)
    return {
        "path": "GET /users?limit=100 (a page of 100 users from Postgres), straight to io",
        "concurrency": concurrency,
        **result,
        "two_over_one_rps": round(result["2_workers"]["rps"] / result["1_worker"]["rps"], 2),
    }


async def alternate_urls(
    targets: Mapping[str, str],
    concurrency: int,
    seconds: float,
    rounds: int,
    headers: Mapping[str, str] = HEADERS,
    services: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``alternate`` for plain GETs of URLs, on wrk when it is installed (``load_generator`` says which).

    Each target's figures are medians over the rounds; ``x_cache`` sums the X-Cache answers. With
    ``services`` (name: URL) and wrk, each round also reads the CPU every service, wrk and the host
    spent (``lib/cpuuse.py``): ``cpu_us_<name>`` and ``cpu_us_generator`` per request,
    ``host_cores_busy``."""
    if not wrk.available():
        seen = {name: Counter[str]() for name in targets}
        async with session(limit=concurrency) as client:
            calls = {name: get_call(client, url, headers, seen[name]) for name, url in targets.items()}
            result = await alternate(calls, concurrency, seconds, rounds)
        for name in targets:
            result[name]["x_cache"] = dict(seen[name])
        return {**result, "load_generator": "aiohttp (wrk not installed: the client shares the cores)"}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for url in targets.values():  # warm-up: connections, caches, the first-request costs
        await asyncio.to_thread(wrk.run, url, concurrency=concurrency, seconds=1, headers=headers)
    meter = cpuuse.CpuMeter(services) if services else None
    for index in range(rounds):
        order = list(targets.items()) if index % 2 == 0 else list(reversed(targets.items()))
        for name, url in order:
            start = meter.start() if meter else None
            one = await asyncio.to_thread(wrk.run, url, concurrency=concurrency, seconds=seconds, headers=headers)
            if meter is not None and start is not None:
                one |= meter.per_request(start, one["requests"])
            runs[name].append(one)
    out: dict[str, Any] = {}
    for name, r in runs.items():
        cache: Counter[str] = Counter()
        for one in r:
            cache.update(one["x_cache"])
        numbers = [{k: v for k, v in one.items() if k not in ("statuses", "x_cache")} for one in r]
        out[name] = {**median_of(numbers), "x_cache": dict(cache)}
    return {**out, "load_generator": wrk.version()}
