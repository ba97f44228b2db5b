"""The I/O path under load: one io worker and one gateway worker, aiohttp as the load generator.

Measures, side by side in one run:

- 1000 concurrent ``GET /demo/async?delay=1`` through the gateway (goal: all succeed in < 2 s);
- 200 concurrent ``/demo/sync?delay=1`` (expected ~ requests / thread tokens seconds);
- io's ``/healthz`` latency while ``/demo/blocking?delay=1`` runs (~1 s: the loop is blocked),
  against the same probe while ``/demo/async?delay=1`` runs (~0 s);
- throughput and p50/p99 of ``GET /users/{id}`` through the gateway vs. straight to io, same concurrency;
- aiohttp vs httpx vs httpx-aiohttp as the client of io at the same concurrency: the figures
  behind aiohttp in ``gateway/upstream.py``.

    python loadtests/bench_io.py [--quick] [--out results.json]

Uses a throwaway database on the Postgres at ``PANORAMA_BENCH_PG_DSN`` (default 127.0.0.1:5432)
if it answers, else embedded SQLite (``/demo/sync`` then sleeps in a thread instead of pg_sleep).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
from httpx_aiohttp import AiohttpTransport

from panorama.core.testing import free_port, gunicorn_command, running

PG_DSN = os.environ.get("PANORAMA_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "bench-io-key-0123456789abcdef"
HEADERS = {"X-API-Key": API_KEY}


@contextlib.contextmanager
def bench_database(workdir: Path) -> Iterator[str]:
    """A throwaway Postgres database if one can be created, else an SQLite file in ``workdir``."""
    name = f"panorama_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=2) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield f"sqlite+aiosqlite:///{workdir}/bench.db"
        return
    try:
        yield f"postgresql+asyncpg://{PG_DSN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else 0.0


async def burst(session: aiohttp.ClientSession, url: str, n: int) -> dict[str, Any]:
    """``n`` requests at once; wall time and how many answered 200."""

    async def one() -> int:
        try:
            async with session.get(url, headers=HEADERS) as resp:
                await resp.read()
                return resp.status
        except aiohttp.ClientError:
            return -1

    start = time.perf_counter()
    statuses = await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - start
    return {"requests": n, "ok": statuses.count(200), "wall_s": round(wall, 3), "statuses": sorted(set(statuses))}


async def closed_loop(call: Callable[[], Awaitable[int]], total: int, concurrency: int) -> dict[str, float]:
    """``total`` requests by ``concurrency`` workers back to back: throughput and latency percentiles."""
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            try:
                status = await call()
            except (aiohttp.ClientError, httpx.HTTPError):
                status = -1
            latencies.append(time.perf_counter() - t0)
            errors += status != 200

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return {
        "rps": round(total / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "errors": errors,
    }


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


async def probe_health(session: aiohttp.ClientSession, io: str, demo_path: str) -> float:
    """Latency of io's /healthz sent 0.1 s after a 1 s demo request started."""
    demo = asyncio.create_task(session.get(f"{io}{demo_path}?delay=1"))
    await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    async with session.get(f"{io}/healthz") as resp:
        await resp.read()
    waited = time.perf_counter() - t0
    (await demo).release()
    return waited


async def compare_clients(url: str, total: int, concurrency: int, rounds: int) -> dict[str, dict[str, float]]:
    """The same GET load on io from aiohttp, httpx and httpx over aiohttp's transport."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: dict[str, list[dict[str, float]]] = {"aiohttp": [], "httpx": [], "httpx-aiohttp": []}
    for _ in range(rounds):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def via_aiohttp() -> int:
                async with session.get(url) as resp:
                    await resp.read()
                    return resp.status

            results["aiohttp"].append(await closed_loop(via_aiohttp, total, concurrency))
        for name, client in (
            ("httpx", httpx.AsyncClient(limits=limits)),
            ("httpx-aiohttp", httpx.AsyncClient(transport=AiohttpTransport(limits=limits))),
        ):
            async with client:

                async def via_httpx(client: httpx.AsyncClient = client) -> int:
                    return (await client.get(url)).status_code

                results[name].append(await closed_loop(via_httpx, total, concurrency))
    return {name: median_run(runs) for name, runs in results.items()}


async def measure(io: str, gateway: str, user_id: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    connector = aiohttp.TCPConnector(limit=0)  # the load generator must not be the queue
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.get(f"{io}/debug/loop") as resp:
            threads = int((await resp.json())["thread_tokens"])
        async with session.get(f"{io}/demo/async?delay=0") as resp:
            await resp.read()

        n_async = 200 if quick else 1000
        # Cold: every client->gateway and gateway->io connection is opened inside the burst. Warm: the
        # same burst again while both pools still hold those connections (the steady state of a server).
        cold = await burst(session, f"{gateway}/demo/async?delay=1", n_async)
        warm = await burst(session, f"{gateway}/demo/async?delay=1", n_async)
        out["async_through_gateway"] = {**warm, "cold_wall_s": cold["wall_s"], "cold_ok": cold["ok"]}

        n_sync = 40 if quick else 200
        sync = await burst(session, f"{gateway}/demo/sync?delay=1", n_sync)
        sync["threads"] = threads
        sync["expected_s"] = round(n_sync / threads, 2)
        sync["ratio_to_expected"] = round(sync["wall_s"] / sync["expected_s"], 2)
        out["sync_through_gateway"] = sync

        blocked = [await probe_health(session, io, "/demo/blocking") for _ in range(3)]
        free = [await probe_health(session, io, "/demo/async") for _ in range(3)]
        out["healthz_during_demo"] = {
            "blocking_median_s": round(statistics.median(blocked), 3),
            "async_median_s": round(statistics.median(free), 4),
        }

    total, concurrency, rounds = (400, 32, 1) if quick else (3000, 64, 3)
    path = f"/users/{user_id}"
    throughput: dict[str, list[dict[str, float]]] = {"gateway": [], "io": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        for _ in range(rounds):
            for name, base in (("gateway", gateway), ("io", io)):

                async def call(base: str = base) -> int:
                    async with session.get(base + path, headers=HEADERS) as resp:
                        await resp.read()
                        return resp.status

                throughput[name].append(await closed_loop(call, total, concurrency))
    gw, direct = median_run(throughput["gateway"]), median_run(throughput["io"])
    out["throughput_users_get"] = {
        "concurrency": concurrency,
        "requests": total,
        "gateway": gw,
        "io_direct": direct,
        "gateway_rps_ratio": round(gw["rps"] / direct["rps"], 2),
        "gateway_p50_overhead_ms": round(gw["p50_ms"] - direct["p50_ms"], 2),
    }

    clients = await compare_clients(io + path, total, concurrency, rounds)
    base = clients["aiohttp"]["rps"]
    out["client_comparison"] = {
        "target": "io GET /users/{id}",
        "concurrency": concurrency,
        **clients,
        "rps_ratio_vs_aiohttp": {name: round(r["rps"] / base, 2) for name, r in clients.items()},
    }
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Start io and gateway (one worker each) on free ports, measure, stop them; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-io-") as tmp, bench_database(Path(tmp)) as database_url:
        workdir = Path(tmp)
        env = {
            **os.environ,
            "PANORAMA_DATABASE_URL": database_url,
            "PANORAMA_LOG_JSON": "false",
            # gunicorn recycles a worker after 20000 requests: mid-run that would be a restart, not load.
            "PANORAMA_MAX_REQUESTS": "10000000",
        }
        env.pop("PANORAMA_REDIS_URL", None)  # in-process cache: the bench needs no Redis
        subprocess.run([sys.executable, "-m", "panorama.io.migrate"], cwd=workdir, env=env, check=True)
        io_port, gw_port = free_port(), free_port()
        io, gateway = f"http://127.0.0.1:{io_port}", f"http://127.0.0.1:{gw_port}"
        io_env = {**env, "PANORAMA_DEMO_ANTIPATTERNS": "true", "PANORAMA_LOG_LEVEL": "WARNING"}
        gw_env = {
            **env,
            "PANORAMA_API_KEYS": API_KEY,
            "PANORAMA_IO_URL": io,
            "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{free_port()}",
            # One socket per in-flight request: 1000 concurrent calls need 1000 upstream connections.
            "PANORAMA_UPSTREAM_CONNECTIONS": "1200",
            "PANORAMA_TIMEOUT_DEMO": "60",
            "PANORAMA_LOG_LEVEL": "WARNING",
            # One key sends every request here: the per-key limit would measure itself, not the gateway.
            "PANORAMA_RATE_LIMIT": "off",
        }
        io_cmd = gunicorn_command("panorama.io.app:create_app()", io_port, workers=1)
        gw_cmd = gunicorn_command("panorama.gateway.app:create_app()", gw_port, workers=1)
        with (
            running(io_cmd, io_env, workdir / "io.log", url=io, ready="/readyz"),
            running(gw_cmd, gw_env, workdir / "gateway.log", url=gateway, ready="/healthz"),
        ):
            created = httpx.post(f"{io}/users", json={"name": "Bench", "email": "bench@example.org"}, timeout=10)
            created.raise_for_status()
            result = asyncio.run(measure(io, gateway, created.json()["id"], quick))
        result["database"] = database_url.split(":", 1)[0]
        result["quick"] = quick
        return result


def print_table(result: dict[str, Any]) -> None:
    a, s, h = result["async_through_gateway"], result["sync_through_gateway"], result["healthz_during_demo"]
    t, c = result["throughput_users_get"], result["client_comparison"]
    print(f"database: {result['database']}")
    print(
        f"{a['requests']} concurrent /demo/async?delay=1 via gateway: warm {a['wall_s']} s, {a['ok']} ok; "
        f"cold (new connections) {a['cold_wall_s']} s, {a['cold_ok']} ok (goal < 2 s)"
    )
    print(
        f"{s['requests']} concurrent /demo/sync?delay=1 via gateway: {s['wall_s']} s with {s['threads']} threads "
        f"(expected ~{s['expected_s']} s, ratio {s['ratio_to_expected']}), {s['ok']} ok"
    )
    print(
        f"io /healthz during /demo/blocking?delay=1: {h['blocking_median_s']} s; "
        f"during /demo/async: {h['async_median_s']} s"
    )
    print(f"GET /users/{{id}} at concurrency {t['concurrency']}:")
    for name in ("gateway", "io_direct"):
        r = t[name]
        print(
            f"  {name:10} {r['rps']:>8} req/s  p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  errors {r['errors']}"
        )
    print(f"  gateway/io throughput ratio {t['gateway_rps_ratio']}, p50 overhead {t['gateway_p50_overhead_ms']} ms")
    print(f"client comparison against io at concurrency {c['concurrency']}:")
    for name in ("aiohttp", "httpx", "httpx-aiohttp"):
        r = c[name]
        print(
            f"  {name:14} {r['rps']:>8} req/s  p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  "
            f"x{c['rps_ratio_vs_aiohttp'][name]} of aiohttp"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller bursts and fewer rounds")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    args = parser.parse_args()
    result = run(quick=args.quick)
    print_table(result)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
