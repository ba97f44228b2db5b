"""Sections 8 and 10 of ``make bench``: what users run (two workers per service, the defaults), under load.

8. ``GET /users/{id}`` through the gateway at concurrency 256 for 15 s, cache hit (one hot id) and
   cache miss (random ids over a large seeded table): throughput, p99 and errors (target 0). Then a
   TTL expiry under the same load, for a whole number of refresh cycles: io's own count of the
   loads its read-through ran (``panorama_cache_loads_total``, one query each, all workers' samples
   summed by its ``/metrics``) gives the queries, divided by keys and by the cycles (target: at most
   one per key each). Postgres' index-scan counter, used before, lags: a backend flushes it at most
   once a second, and an idle one only after 10 s.
   A miss waits its turn for one of io's DB connections (FIFO, ``panorama.io.admission``) within
   the request's budget; before that queue, SQLAlchemy's unfair pool starved some past its 3 s wait.
10. Worker recycling under load: gunicorn's ``max_requests`` set low (1000, half jitter staggered by
    worker) so that the gateway's and io's workers reach their limits during the run. Lost requests
    are the figure (target 0), counted strictly: every answer but a 200, and every request that got
    no answer at all, named by its error (``statuses``: ``ServerDisconnectedError``,
    ``ClientOSError`` for a reset...). The client is plain aiohttp and never retries, though
    browsers and urllib3 send an idempotent GET again after a reset on a keep-alive connection: a
    reset the server caused counts here. A worker at its limit is replaced before it stops
    (``panorama.core.worker``), so it serves on, past its limit, until its replacement serves.

Every service runs with the settings ``make up`` and the chart use; the settings a part changes
are returned beside its figure (``settings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from panorama.testing import metric_sum

from . import cpuuse, stack
from .load import closed_loop, session
from .stack import HEADERS

CONCURRENCY = 256
LOADS, REQUESTS = "panorama_cache_loads_total", "panorama_http_request_duration_seconds_count"
# The part of every setting that a bench changes for all its services: one key sends everything.
ALWAYS = {"PANORAMA_RATE_LIMIT": "off"}


@contextlib.contextmanager
def suite(
    workdir: Path, database_url: str, redis_url: str, io_env: dict[str, str], gw_env: dict[str, str], tag: str = "-u"
) -> Iterator[str]:
    """io and the gateway, two workers each (``make up``'s defaults); yields the gateway's URL and io's."""
    common = {"PANORAMA_DATABASE_URL": database_url, "PANORAMA_REDIS_URL": redis_url}
    with stack.service("io", workdir, {**common, **io_env}, workers=2, tag=tag) as io:
        env = {**stack.gateway_env(io, f"http://127.0.0.1:{stack.free_port()}", redis_url), **ALWAYS, **gw_env}
        with stack.service("gateway", workdir, env, workers=2, tag=tag, ready="/healthz") as gateway:
            yield gateway, io


def io_counts(io: str) -> Counter[str]:
    """From io's ``/metrics`` (every worker's samples): its read-through loads so far by cause (miss,
    refresh, bypass; one query each) and, as ``requests``, the ``GET /users/{user_id}`` it answered,
    which shows that the scrape covered every worker (the bench sent that many)."""
    text = httpx.get(f"{io}/metrics", timeout=10).raise_for_status().text
    counts = Counter({cause: int(metric_sum(text, LOADS, cause=cause)) for cause in ("miss", "refresh", "bypass")})
    counts["requests"] = int(metric_sum(text, REQUESTS, method="GET", route="/users/{user_id}"))
    return counts


async def drive_ids(gateway: str, ids: list[int], seconds: float, seen: Counter[str]) -> dict[str, float]:
    async with session(limit=CONCURRENCY) as client:

        async def call() -> int:
            try:
                async with client.get(f"{gateway}/users/{random.choice(ids)}", headers=HEADERS) as resp:
                    await resp.read()
                    seen[resp.headers.get("X-Cache", str(resp.status))] += 1
                    return resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                seen[type(exc).__name__] += 1  # no answer at all: named, so a reset is told from a timeout
                raise

        return await closed_loop(call, CONCURRENCY, seconds)


def users_under_load(
    workdir: Path, database_url: str, redis_url: str, ids: list[int], *, seconds: float
) -> dict[str, Any]:
    """Section 8 (see the module docstring)."""
    out: dict[str, Any] = {"path": "GET /users/{id} via the gateway", "concurrency": CONCURRENCY, "seconds": seconds}
    with suite(workdir, database_url, redis_url, {}, {}) as (gateway, _io):
        hot = ids[:1]
        seen_hit: Counter[str] = Counter()
        asyncio.run(drive_ids(gateway, hot, 1.0, Counter()))  # warm the entry and the connections
        out["hit"] = {**asyncio.run(drive_ids(gateway, hot, seconds, seen_hit)), "x_cache": dict(seen_hit)}
        seen_miss: Counter[str] = Counter()
        out["miss"] = {**asyncio.run(drive_ids(gateway, ids, seconds, seen_miss)), "x_cache": dict(seen_miss)}
        out["hit"]["settings"] = out["miss"]["settings"] = dict(ALWAYS)
    ttl, keys = 5, 8
    # A TTL cycle: without refresh-ahead an entry would expire every `ttl` s; with it, one request
    # refreshes it every 0.8 x ttl (the last 20 % is the refresh window). At most one query per cycle.
    # The run lasts a whole number of cycles: then it crosses each key's refresh point exactly that
    # many times, whenever it starts (15 s over 4 s cycles crossed 3 or 4, by phase alone: 0.9 or 1.07).
    cycle = ttl * 0.8
    expiries = max(1, round(seconds / cycle))
    expiry_env = {"PANORAMA_CACHE_TTL": str(ttl)}
    with suite(workdir, database_url, redis_url, expiry_env, {}) as (gateway, io):
        hot = ids[100 : 100 + keys]
        asyncio.run(drive_ids(gateway, hot, 1.0, Counter()))
        before = io_counts(io)
        seen: Counter[str] = Counter()
        loop = asyncio.run(drive_ids(gateway, hot, expiries * cycle, seen))
        time.sleep(0.2)  # io counts a request just after its answer is sent
        counts = io_counts(io)
        counts.subtract(before)
    io_requests = counts.pop("requests")
    queries = counts.total()
    per_key = queries / keys / expiries
    # Every request the bench sent reached io: had the scrape seen only some workers, fewer would show.
    all_workers_seen = io_requests >= loop["requests"] - loop["errors"]
    out["expiry"] = {
        **loop,
        "x_cache": dict(seen),
        "keys": keys,
        "ttl_s": ttl,
        "expiries_per_key": expiries,
        "cycle_s": cycle,
        "run_s": expiries * cycle,
        "queries": queries,
        "loads_by_cause": dict(counts),
        "io_requests_counted": io_requests,
        "queries_per_key_per_expiry": round(per_key, 2),
        "settings": {**ALWAYS, **expiry_env},
    }
    errors = out["hit"]["errors"] + out["miss"]["errors"] + out["expiry"]["errors"]
    out["goal"] = {
        "errors": errors,
        "queries_per_key_per_expiry": round(per_key, 2),
        "all_io_workers_counted": all_workers_seen,
        "met": errors == 0 and per_key <= 1.0 and all_workers_seen,
    }
    return out


def recycle_under_load(
    workdir: Path, database_url: str, redis_url: str, ids: list[int], *, seconds: float
) -> dict[str, Any]:
    """Section 10: requests lost while gunicorn recycles the gateway's and io's workers under load."""
    # About one recycle per worker in the run (jitter: half, staggered by worker: 1000-1500 requests;
    # each serves on until its replacement serves, so a 15 s run sees one or two per service).
    recycle = {"PANORAMA_MAX_REQUESTS": "1000"}
    with suite(workdir, database_url, redis_url, recycle, recycle, tag="-recycle") as (gateway, _io):
        seen: Counter[str] = Counter()
        loop = asyncio.run(drive_ids(gateway, ids[:50], seconds, seen))
    # uvicorn logs each recycle ("Maximum request limit of N exceeded. Terminating process.").
    recycles = {
        service: sum(
            log.read_text(errors="replace").count("Maximum request limit")
            for log in workdir.glob(f"{service}-recycle-*.log")
        )
        for service in ("gateway", "io")
    }
    return {
        "path": "GET /users/{id} via the gateway, 50 ids (cache hits)",
        "concurrency": CONCURRENCY,
        "seconds": seconds,
        **loop,
        "statuses": dict(seen),
        "recycles": recycles,
        "lost": loop["errors"],
        "settings": {**ALWAYS, **recycle},
        "goal": {"lost": loop["errors"], "met": loop["errors"] == 0},
    }


def awaits_through_gateway(workdir: Path, database_url: str, redis_url: str, *, rounds: int) -> dict[str, Any]:
    """Section 1b: 1000 concurrent ``GET /demo/async?delay=1`` through the gateway vs. straight to io,
    ``make up``'s defaults (two workers each, the planned 1024 upstream sockets), same run,
    alternating rounds. Cold: the first burst after start (every connection new, client and
    gateway alike); warm: later bursts on pooled connections."""
    from .load import burst

    path = "/demo/async?delay=1"
    io_env = {"PANORAMA_DEMO_ANTIPATTERNS": "false"}
    common = {"PANORAMA_DATABASE_URL": database_url, "PANORAMA_REDIS_URL": redis_url}
    with stack.service("io", workdir, {**common, **io_env}, workers=2, tag="-1b") as io:
        env = {**stack.gateway_env(io, f"http://127.0.0.1:{stack.free_port()}", redis_url), **ALWAYS}
        with stack.service("gateway", workdir, env, workers=2, tag="-1b", ready="/healthz") as gateway:

            async def measure() -> dict[str, Any]:
                runs: dict[str, list[float]] = {"gateway": [], "direct": []}
                # CPU seconds of each warm burst: gateway, io, this process (the client), host cores busy.
                meter = cpuuse.CpuMeter({"gateway": gateway, "io": io}, own=True)
                cpu: dict[str, list[dict[str, float]]] = {"gateway": [], "direct": []}
                errors = 0
                async with session(total_timeout=120) as client:
                    cold_gw = await burst(client, f"{gateway}{path}", 1000, headers=HEADERS)
                async with session(total_timeout=120) as client:
                    cold_io = await burst(client, f"{io}{path}", 1000, headers=HEADERS)
                    # This session's 1000 connections to the gateway too, or the first "warm" gateway
                    # round would open them (cold for the client, warm only between gateway and io).
                    await burst(client, f"{gateway}{path}", 1000, headers=HEADERS)
                    for index in range(rounds):
                        order = [("gateway", gateway), ("direct", io)]
                        for name, base in order if index % 2 == 0 else reversed(order):
                            start = meter.start()
                            result = await burst(client, f"{base}{path}", 1000, headers=HEADERS)
                            cpu[name].append(meter.spent(start))
                            runs[name].append(result["wall_s"])
                            errors += result["errors"]
                gw, direct = statistics.median(runs["gateway"]), statistics.median(runs["direct"])
                return {
                    "warm_gateway_s": round(gw, 3),
                    "warm_direct_s": round(direct, 3),
                    "warm_ratio": round(gw / direct, 2),
                    "cold_gateway_s": cold_gw["wall_s"],
                    "cold_direct_s": cold_io["wall_s"],
                    "cold_ratio": round(cold_gw["wall_s"] / cold_io["wall_s"], 2),
                    "errors": errors + cold_gw["errors"] + cold_io["errors"],
                    "per_round": runs,
                    "warm_cpu_s": {
                        name: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]}
                        for name, rs in cpu.items()
                        if rs
                    },
                }

            out = asyncio.run(measure())
    met = out["warm_ratio"] <= 1.25 and out["cold_ratio"] <= 1.6 and out["errors"] == 0
    return {"path": path, "rounds": rounds, **out, "settings": dict(ALWAYS), "goal": {"met": met}}


def access_log_cost(workdir: Path, database_url: str, redis_url: str, ids: list[int], *, rounds: int) -> dict[str, Any]:
    """Section 9: the access log's cost: the same suite with ``PANORAMA_ACCESS_LOG`` true (the default)
    and false, side by side, ``GET /users/{id}`` cache hits via the gateway at concurrency 64,
    alternating rounds."""
    from .load import median_of

    off = {"PANORAMA_ACCESS_LOG": "false"}
    concurrency, seconds = 64, 5.0
    with (
        suite(workdir, database_url, redis_url, {}, {}, tag="-logon") as (on_url, _on_io),
        suite(workdir, database_url, redis_url, off, off, tag="-logoff") as (off_url, _off_io),
    ):

        async def measure() -> dict[str, Any]:
            runs: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
            async with session(limit=concurrency) as client:

                def caller(base: str) -> Any:
                    async def call() -> int:
                        async with client.get(f"{base}/users/{ids[0]}", headers=HEADERS) as resp:
                            await resp.read()
                            return resp.status

                    return call

                calls = {"on": caller(on_url), "off": caller(off_url)}
                for call in calls.values():
                    await closed_loop(call, concurrency, 1.0)
                for index in range(rounds):
                    for name in ("on", "off") if index % 2 == 0 else ("off", "on"):
                        runs[name].append(await closed_loop(calls[name], concurrency, seconds))
            return {name: median_of(r) for name, r in runs.items()}

        result = asyncio.run(measure())
    share = result["on"]["rps"] / result["off"]["rps"]
    return {
        "path": "GET /users/{id} via the gateway (cache hit), two workers each",
        "concurrency": concurrency,
        "seconds": seconds,
        **result,
        "on_over_off_rps": round(share, 3),
        "settings": {"on": dict(ALWAYS), "off": {**ALWAYS, **off}},
    }
