"""What tracing costs: gateway throughput with OTLP export on vs off, same run, alternating rounds.

Identical gateway+io stacks (one gunicorn worker each, as ``make up`` runs them: Postgres, Redis,
the access log on at INFO) run side by side; the traced ones export to a receiver on 127.0.0.1 that
keeps its connections alive as a collector does, the untraced one has no endpoint (tracing not
installed). Rounds alternate between them so host noise lands on all; each round drives
``GET /demo/async?delay=0`` through the gateway (server span, upstream client span, io's server
span) at a fixed concurrency for a fixed time.

    python loadtests/bench_tracing.py [--quick] [--ratio R] [--out results.json]
    python loadtests/bench_tracing.py --section   # make bench §7
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from lib import cpuuse, wrk
from lib import stack as stack_lib
from lib.output import emit

from panorama.testing import OtlpReceiver, free_port

API_KEY = stack_lib.API_KEY
PATH = "/demo/async?delay=0"
CONCURRENCY = 16


class Stack(NamedTuple):
    gateway: str
    io: str


# What every stack runs with beyond `make up`'s settings (lib/stack.py: BASE_ENV, gateway_env): the
# CPU limit `make up` sets, so the pools are planned as there, and the Postgres and Redis of the run.
# The traced stacks add the receiver's endpoint and their sampler, printed beside each figure.
COMMON = {"PANORAMA_CPU_LIMIT": "1"}


class Backends(NamedTuple):
    database_url: str
    redis_url: str


@contextlib.contextmanager
def backends(workdir: Path) -> Iterator[Backends]:
    """A throwaway Postgres database (migrated) and redis-server, shared by the run's stacks."""
    with stack_lib.postgres_database() as database_url, stack_lib.redis_server(workdir) as redis_url:
        stack_lib.migrate(database_url, workdir)
        yield Backends(database_url, redis_url)


@contextlib.contextmanager
def stack(name: str, workdir: Path, backing: Backends, extra_env: dict[str, str]) -> Iterator[Stack]:
    """io + gateway (one worker each) with `make up`'s settings and ``extra_env``; yields their URLs."""
    io_env = {**COMMON, "PANORAMA_DATABASE_URL": backing.database_url, "PANORAMA_REDIS_URL": backing.redis_url}
    with stack_lib.service("io", workdir, {**io_env, **extra_env}, tag=f"-{name}") as io:
        gateway_env = {
            **COMMON,
            **stack_lib.gateway_env(io, f"http://127.0.0.1:{free_port()}", backing.redis_url),
            **extra_env,
        }
        with stack_lib.service("gateway", workdir, gateway_env, tag=f"-{name}", ready="/healthz") as gateway:
            yield Stack(gateway, io)


async def drive(url: str, seconds: float, path: str = PATH) -> dict[str, float]:
    """Requests per second and errors at CONCURRENCY for ``seconds``."""
    done = errors = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(url, connector=connector, headers={"X-API-Key": API_KEY}) as session:

        async def user() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop:
                async with session.get(path) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    return {"rps": done / elapsed, "errors": errors}


def run(quick: bool = False, ratio: float | None = None) -> dict[str, Any]:
    """``ratio`` None: every trace sampled (the worst case); else the production sampler at that ratio."""
    rounds, seconds = (3, 3.0) if quick else (6, 8.0)
    with (
        tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp,
        OtlpReceiver(decode=False) as collector,
        backends(Path(tmp)) as backing,
    ):
        workdir = Path(tmp)
        traced_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
        if ratio is not None:
            traced_env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)}
        with (
            stack("off", workdir, backing, {}) as (off_url, _),
            stack("on", workdir, backing, traced_env) as (on_url, _),
        ):
            for url in (off_url, on_url):  # warm-up: connections, first imports, JIT-free but cache-warm
                asyncio.run(drive(url, 1.0))
            per_round: list[dict[str, float]] = []
            for index in range(rounds):
                order = [("off", off_url), ("on", on_url)]
                if index % 2:
                    order.reverse()
                figures = {name: asyncio.run(drive(url, seconds)) for name, url in order}
                per_round.append({name: figures[name]["rps"] for name in ("off", "on")})
                if any(f["errors"] for f in figures.values()):
                    raise RuntimeError(f"errors during the round: {figures}")
    off = statistics.median(r["off"] for r in per_round)
    on = statistics.median(r["on"] for r in per_round)
    ratios = [r["on"] / r["off"] for r in per_round]
    return {
        "route": f"GET {PATH} through gateway -> io, concurrency {CONCURRENCY}, 1 worker each",
        "sampler": "always_on" if ratio is None else f"parentbased_traceidratio {ratio:g}",
        "rounds": rounds,
        "round_seconds": seconds,
        "rps_off_median": round(off, 1),
        "rps_on_median": round(on, 1),
        "ratio_on_off_median": round(statistics.median(ratios), 3),
        "overhead_percent": round((1 - statistics.median(ratios)) * 100, 1),
        "per_round": [{k: round(v, 1) for k, v in r.items()} for r in per_round],
        "collector_requests": collector.requests,
        "collector_bytes": collector.bytes,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['route']}; {result['rounds']} alternating rounds of {result['round_seconds']}s")
    print(f"  sampler       {result['sampler']}")
    print(f"  tracing off   {result['rps_off_median']:8.1f} req/s (median)")
    print(f"  tracing on    {result['rps_on_median']:8.1f} req/s (median)")
    print(f"  on/off ratio  {result['ratio_on_off_median']:8.3f}  (overhead {result['overhead_percent']}%)")
    print(f"  collector got {result['collector_requests']} exports, {result['collector_bytes']} bytes")


SAMPLERS = {
    "off": {},
    "10%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "always_on": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"},
    # A second untraced stack, identical to "off": what it reads of "off" is this run's resolution
    # (identical stacks read 0.91 and 1.15 of each other in 4 rounds of 5 s on the shared 2-core host).
    "control": {},
}
TRACED = ("10%", "always_on")
# The settings every stack of §7 runs with, as the report prints them: `make up`'s (lib/stack.py).
SETTINGS = {
    **stack_lib.BASE_ENV,
    **COMMON,
    "PANORAMA_RATE_LIMIT": stack_lib.gateway_env("", "")["PANORAMA_RATE_LIMIT"],
    "workers": "1 per service",
    "backends": "Postgres, Redis",
}
GOALS = {("trivial", "10%"): 0.90, ("users", "10%"): 0.90, ("trivial", "always_on"): 0.75, ("users", "always_on"): 0.85}


def throughput(url: str, path: str, seconds: float, meter: cpuuse.CpuMeter | None = None) -> dict[str, float]:
    """``rps`` of ``path`` at CONCURRENCY: on wrk when installed (lib/wrk.py says why). With a meter
    (wrk only), also ``cpu_us``: the CPU the stack's gateway and io (every thread) spent per request."""
    if not wrk.available():
        return {"rps": asyncio.run(drive(url, seconds, path))["rps"]}
    start = meter.start() if meter else None
    result = wrk.run(url + path, concurrency=CONCURRENCY, seconds=seconds, headers={"X-API-Key": API_KEY})
    if result["errors"]:
        raise RuntimeError(f"errors during the round: {result}")
    if meter is None or start is None:
        return {"rps": result["rps"]}
    used = meter.per_request(start, result["requests"])
    return {"rps": result["rps"], "cpu_us": used["cpu_us_gateway"] + used["cpu_us_io"]}


def section(quick: bool = False) -> dict[str, Any]:
    """``make bench`` §7: tracing off / 10 % / always on, trivial route and ``GET /users/{id}`` (a cache
    hit), alternating rounds, against a real OTLP receiver that decodes every span it gets (after the
    rounds: decoding during them would take CPU from the load generator, not from the services).
    A fourth stack, untraced like ``off``, is measured in the same rounds: the run's resolution."""
    from panorama.testing import OtlpReceiver

    # Many short rounds rather than a few long ones: each ratio pairs measurements a few seconds
    # apart, and the median of ten of them moves less with the host's drift than the median of four.
    rounds, seconds = (2, 2.0) if quick else (10, 2.0)
    out: dict[str, Any] = {
        "rounds": rounds,
        "round_seconds": seconds,
        "concurrency": CONCURRENCY,
        "load_generator": wrk.version() if wrk.available() else "aiohttp (wrk not installed)",
        "rows": [],
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp,
        OtlpReceiver(defer=True) as receiver,
        backends(Path(tmp)) as backing,
        contextlib.ExitStack() as es,
    ):
        stacks = {}
        for name, env in SAMPLERS.items():
            traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **env} if env else {}
            stacks[name] = es.enter_context(stack(name.replace("%", "pct"), Path(tmp), backing, traced))
        urls = {name: s.gateway for name, s in stacks.items()}
        meters = {name: cpuuse.CpuMeter(s._asdict()) for name, s in stacks.items()} if wrk.available() else {}
        paths = {"trivial": PATH, "users": f"/users/{create_user(urls['off'])}"}
        out["control"] = {}
        for route, path in paths.items():
            rows, control = measure_route(urls, route, path, rounds, seconds, meters)
            out["rows"] += rows
            out["control"][route] = control
        time.sleep(6)  # one batch delay: the last exports arrive
        spans = receiver.received()
        # SQL spans are named after the database: the run's throwaway one, not the report's business.
        database = backing.database_url.rsplit("/", 1)[1]
        names = {s.name.replace(database, "$DATABASE") for s in spans}
    out["settings"] = SETTINGS
    out["spans_decoded"] = len(spans)
    out["span_names"] = sorted(names)[:12]
    return out


def create_user(url: str) -> int:
    """One user in the run's database (every stack reads it), through the gateway at ``url``."""
    import httpx

    response = httpx.post(
        f"{url}/users", json={"name": "T", "email": "tracing@example.org"}, headers={"X-API-Key": API_KEY}
    )
    response.raise_for_status()
    return int(response.json()["id"])


def measure_route(
    urls: dict[str, str],
    route: str,
    path: str,
    rounds: int,
    seconds: float,
    meters: dict[str, cpuuse.CpuMeter] | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """Alternating rounds over the stacks on one path; one row per traced sampler against ``off``,
    and what the untraced control stack read of ``off`` (the same median of per-round ratios).

    With ``meters`` each row also has ``cpu_us_off`` and ``cpu_us_traced`` (gateway and io, every
    thread, per request; medians) and ``cpu_ratio``, the median of the rounds' untraced / traced CPU:
    what a recorded request costs, apart from how the host shared its cores that second."""
    meters = meters or {}
    for url in urls.values():
        throughput(url, path, 1.0)  # warm: connections, the cache entry
    per_round: list[dict[str, dict[str, float]]] = []
    for index in range(rounds):
        order = list(urls.items())
        if index % 2:
            order.reverse()
        per_round.append({name: throughput(url, path, seconds, meters.get(name)) for name, url in order})
    control = round(statistics.median(r["control"]["rps"] / r["off"]["rps"] for r in per_round), 3)
    rows = []
    for name in TRACED:
        ratio = statistics.median(r[name]["rps"] / r["off"]["rps"] for r in per_round)
        goal = GOALS[(route, name)]
        row = {
            "route": route,
            "sampler": name,
            "rps_off": round(statistics.median(r["off"]["rps"] for r in per_round), 1),
            "rps_traced": round(statistics.median(r[name]["rps"] for r in per_round), 1),
            "ratio": round(ratio, 3),
            "target": goal,
            "met": ratio >= goal,
            "control": control,
            "settings": {"OTEL_EXPORTER_OTLP_ENDPOINT": "the receiver", **SAMPLERS[name]},
        }
        if meters:
            row["cpu_us_off"] = round(statistics.median(r["off"]["cpu_us"] for r in per_round), 1)
            row["cpu_us_traced"] = round(statistics.median(r[name]["cpu_us"] for r in per_round), 1)
            row["cpu_ratio"] = round(statistics.median(r["off"]["cpu_us"] / r[name]["cpu_us"] for r in per_round), 3)
        rows.append(row)
    return rows, control


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("--ratio", type=float, help="sample this share of traces (default: every trace)")
    parser.add_argument("--section", action="store_true", help="make bench §7: off / 10%% / always on, two routes")
    args = parser.parse_args()
    if args.section:
        result = section(quick=args.quick)
        for row in result["rows"]:
            print(row)
        emit(result, args.out)
        return 0
    result = run(quick=args.quick, ratio=args.ratio)
    print_table(result)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
