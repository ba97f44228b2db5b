"""``make bench``: start what each section needs, measure side by side, write results, plots and a report.

    make bench                          # full run, about 10 minutes on a 2-core machine
    make bench ARGS="--quick"           # development run, about 3 minutes
    make bench ARGS="--sections 1,3"    # only some sections
    make bench ARGS="--url http://127.0.0.1:8000 --api-key KEY"   # section 1 against a running gateway

Writes ``loadtests/results/<timestamp>/``: ``results.json`` (everything), one ``<section>.json`` and
``.csv`` per section, ``<section>.png`` plots and ``report.md``. Sections:

1. completion time of N concurrent 1 s requests on ``/demo/async|sync|blocking`` (one io worker);
2. gateway vs. direct io throughput and p50/p99 at the same concurrency (+ HTTP client libraries);
3. ``GET /users/{id}``: async SQLAlchemy+asyncpg vs. ``def`` + psycopg vs. a Redis cache hit;
4. io with 1 and 2 gunicorn workers;
5. compute: process vs. thread pool, loop lag (``bench_compute.run``);
6. video: worker vs. plain ffmpeg, jobs per minute (``bench_video.run``);
7. tracing off / 10 % / always on, trivial route and ``GET /users/{id}``, against a decoding OTLP
   receiver, with a second untraced stack as the run's control (``bench_tracing.section``);
1b. 1000 concurrent 1 s awaits through the gateway vs. straight to io, two workers each, warm
   and cold (``lib/under_load.py``);
8. ``GET /users/{id}`` via the gateway at concurrency 256, cache hit and miss, and a TTL expiry
   under that load (queries per key), two workers per service (``lib/under_load.py``);
9. the access log's cost: on (the default) vs ``PANORAMA_ACCESS_LOG=false`` (``lib/under_load.py``);
10. worker recycling under load: requests lost (``lib/under_load.py``).

Postgres: a throwaway database on ``PANORAMA_BENCH_PG_DSN`` (default 127.0.0.1:5432); Redis: a
redis-server of its own on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `python loadtests/run.py` and imports alike


import bench_compute
import bench_tracing
import bench_video
from lib import machine, plots, report, sections, stack, under_load
from lib.progress import Progress

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("1", "1b", "2", "3", "4", "5", "6", "7", "8", "9", "10")
KEYS = {
    "1": "1_handler_styles",
    "1b": "1b_awaits_through_gateway",
    "2": "2_gateway_overhead",
    "3": "3_database_paths",
    "4": "4_worker_scaling",
    "5": "5_compute",
    "6": "6_video",
    "7": "7_tracing",
    "8": "8_users_under_load",
    "9": "9_access_log",
    "10": "10_recycle_under_load",
}
SEED_USERS = 2000
# Section 8's misses: random ids over a table far larger than what a run can cache.
LARGE_SEED_USERS = 200_000


class Run:
    def __init__(self, out: Path, quick: bool, progress: Progress) -> None:
        self.out, self.quick, self.progress = out, quick, progress
        self.results: dict[str, Any] = {}
        self.timing: dict[str, dict[str, Any]] = {}
        self.skipped: dict[str, str] = {}

    def section(self, key: str, title: str, measure: Callable[[], dict[str, Any]]) -> None:
        load_before = machine.load()["1m"]
        started = time.monotonic()
        with self.progress.step(f"section {title}"):
            result = measure()
        self.timing[key] = {
            "seconds": round(time.monotonic() - started, 1),
            "load_before": load_before,
            "load_after": machine.load()["1m"],
        }
        self.results[key] = result
        (self.out / f"{key}.json").write_text(json.dumps(result, indent=2) + "\n")
        write_csv(self.out / f"{key}.csv", result)


def write_csv(path: Path, result: dict[str, Any]) -> None:
    """The section's table rows (``rows``, else its flat numbers) as CSV."""
    rows = result.get("rows")
    if not rows:
        rows = [{k: v for k, v in result.items() if not isinstance(v, dict | list)}]
        for name, value in result.items():
            if isinstance(value, dict) and all(not isinstance(x, dict | list) for x in value.values()):
                rows.append({"name": name, **value})
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()})


@contextlib.contextmanager
def local_stack(workdir: Path, progress: Progress, need_two_workers: bool) -> Iterator[dict[str, Any]]:
    """Postgres database, redis-server, io (Redis), io (no cache in the way), gateway; and io x2 if asked."""
    with contextlib.ExitStack() as stack_:
        progress.say("starting: throwaway Postgres database, redis-server, io x2, gateway (one worker each)")
        database_url = stack_.enter_context(stack.postgres_database())
        redis_url = stack_.enter_context(stack.redis_server(workdir))
        stack.migrate(database_url, workdir)
        ids = stack.seed_users(database_url, SEED_USERS)
        common = {"PANORAMA_DATABASE_URL": database_url}
        io = stack_.enter_context(
            stack.service(
                "io", workdir, {**common, "PANORAMA_REDIS_URL": redis_url, "PANORAMA_DEMO_ANTIPATTERNS": "true"}
            )
        )
        # One cache entry while reads cycle over 2000 ids: every read is a miss, i.e. a database read.
        io_nocache = stack_.enter_context(
            stack.service("io", workdir, {**common, "PANORAMA_MEMORY_CACHE_ENTRIES": "1"}, tag="-nocache")
        )
        gateway = stack_.enter_context(
            stack.service(
                "gateway",
                workdir,
                stack.gateway_env(io, f"http://127.0.0.1:{stack.free_port()}", redis_url),
                ready="/healthz",
            )
        )
        io_two = None
        if need_two_workers:
            io_two = stack_.enter_context(
                stack.service("io", workdir, {**common, "PANORAMA_REDIS_URL": redis_url}, workers=2, tag="-2w")
            )
        progress.say(
            f"ready: io {io}, io (no cache) {io_nocache}, gateway {gateway}" + (f", io x2 {io_two}" if io_two else "")
        )
        yield {
            "io": io,
            "io_nocache": io_nocache,
            "gateway": gateway,
            "io_two": io_two,
            "ids": ids,
            "database": "postgres",
            "redis": redis_url,
        }


def run_sections(args: argparse.Namespace, out: Path, progress: Progress) -> Run:
    """Every chosen section, in the report's order; with ``--url`` only what a running gateway allows."""
    run = Run(out, args.quick, progress)
    chosen = [s for s in args.sections.split(",") if s]
    if args.url:
        url_sections(run, chosen, args.url, args.api_key)
        return run
    if http := [s for s in chosen if s in "1234"]:
        http_sections(run, http)
    if loaded := [s for s in chosen if s in ("1b", "8", "9", "10")]:
        under_load_sections(run, loaded)
    standalone_sections(run, chosen)
    return run


def url_sections(run: Run, chosen: list[str], url: str, api_key: str) -> None:
    """``--url``: section 1 against a running gateway; the others need processes this run starts."""
    stack.HEADERS["X-API-Key"] = api_key
    if "1" in chosen:
        run.section(
            KEYS["1"],
            "1 (handler styles, via --url)",
            lambda: asyncio.run(sections.handler_styles(url, sync_cap=100, blocking_cap=5)),
        )
    for s in chosen:
        if s != "1":
            run.skipped[KEYS[s]] = "needs processes this run starts itself (not available with --url)"


def http_sections(run: Run, http: list[str]) -> None:
    """Sections 1-4: HTTP load on one local stack (io, io without a cache, gateway; io x2 for 4)."""
    q = run.quick
    loop_s, rounds = (2.0, 1) if q else (4.0, 3)
    with (
        tempfile.TemporaryDirectory(prefix="panorama-bench-") as tmp,
        local_stack(Path(tmp), run.progress, "4" in http) as env,
    ):
        uid = env["ids"][0]
        if "1" in http:
            caps = (100, 5) if q else (500, 20)
            run.section(
                KEYS["1"],
                "1: N concurrent 1 s requests, async/sync/blocking",
                lambda: asyncio.run(
                    sections.handler_styles(env["io"], sync_cap=caps[0], blocking_cap=caps[1], gateway=env["gateway"])
                ),
            )
        if "2" in http:
            run.section(
                KEYS["2"],
                "2: gateway vs direct io",
                lambda: asyncio.run(
                    sections.gateway_overhead(
                        env["gateway"], env["io"], uid, seconds=loop_s, rounds=rounds, redis=env["redis"]
                    )
                ),
            )
            run.section(
                "2_client_comparison",
                "2b: aiohttp vs httpx as the client",
                lambda: asyncio.run(
                    sections.client_comparison(
                        f"{env['io']}/users/{uid}", concurrencies=(64, 256), seconds=loop_s / 2 if q else 3.0
                    )
                ),
            )
        if "3" in http:
            run.section(
                KEYS["3"],
                "3: async DB vs def DB vs cache hit",
                lambda: asyncio.run(
                    sections.database_paths(
                        env["io"],
                        env["io_nocache"],
                        env["ids"],
                        concurrencies=(16, 64, 256),
                        seconds=loop_s / 2 if q else 3.0,
                        rounds=1 if q else 2,
                    )
                ),
            )
        if "4" in http:
            run.section(
                KEYS["4"],
                "4: 1 vs 2 io workers",
                lambda: asyncio.run(sections.worker_scaling(env["io"], env["io_two"], seconds=loop_s, rounds=rounds)),
            )


def under_load_sections(run: Run, loaded: list[str]) -> None:
    """Sections 1b, 8, 9, 10: services that ``lib/under_load.py`` starts on one seeded database and Redis."""
    q = run.quick
    with (
        tempfile.TemporaryDirectory(prefix="panorama-bench-") as tmp,
        stack.postgres_database() as database_url,
        stack.redis_server(Path(tmp)) as redis_url,
    ):
        workdir = Path(tmp)
        stack.migrate(database_url, workdir)
        ids = stack.seed_users(database_url, 2000 if q else LARGE_SEED_USERS)
        seconds = 5.0 if q else 15.0
        if "1b" in loaded:
            run.section(
                KEYS["1b"],
                "1b: 1000 concurrent 1 s awaits, gateway vs direct io (make up defaults)",
                lambda: under_load.awaits_through_gateway(workdir, database_url, redis_url, rounds=2 if q else 4),
            )
        if "8" in loaded:
            run.section(
                KEYS["8"],
                "8: GET /users/{id} at c=256 via the gateway, hit/miss/expiry",
                lambda: under_load.users_under_load(workdir, database_url, redis_url, ids, seconds=seconds),
            )
        if "9" in loaded:
            run.section(
                KEYS["9"],
                "9: access log on vs off",
                lambda: under_load.access_log_cost(workdir, database_url, redis_url, ids, rounds=2 if q else 4),
            )
        if "10" in loaded:
            run.section(
                KEYS["10"],
                "10: worker recycling under load",
                lambda: under_load.recycle_under_load(workdir, database_url, redis_url, ids, seconds=seconds),
            )


def standalone_sections(run: Run, chosen: list[str]) -> None:
    """Sections 7, 5, 6: benches that start what they measure themselves."""
    q = run.quick
    if "7" in chosen:
        run.section(
            KEYS["7"], "7: tracing off / 10% / always on (bench_tracing)", lambda: bench_tracing.section(quick=q)
        )
    if "5" in chosen:
        run.section(KEYS["5"], "5: compute process vs thread pool (bench_compute)", lambda: bench_compute.run(quick=q))
    if "6" in chosen:
        run.section(KEYS["6"], "6: video worker vs ffmpeg (bench_video)", lambda: bench_video.run(quick=q))


def draw(run: Run, out: Path) -> dict[str, str]:
    r, made = run.results, {}
    drawers: dict[str, Callable[[], Path]] = {
        KEYS["1"]: lambda: plots.handler_styles(r[KEYS["1"]], out / "1_handler_styles.png"),
        KEYS["2"]: lambda: plots.gateway_overhead(r[KEYS["2"]], r.get("2_client_comparison"), out / "2_gateway.png"),
        KEYS["3"]: lambda: plots.database_paths(r[KEYS["3"]], out / "3_database_paths.png"),
        KEYS["4"]: lambda: plots.worker_scaling(r[KEYS["4"]], out / "4_worker_scaling.png"),
        KEYS["5"]: lambda: plots.compute(r[KEYS["5"]], out / "5_compute.png"),
        KEYS["6"]: lambda: plots.video(r[KEYS["6"]], out / "6_video.png"),
    }
    for key, drawer in drawers.items():
        if key in r:
            made[key] = drawer().name
    return made


def closing_notes(run: Run, meta: dict[str, Any]) -> list[str]:
    """Why each missed goal was missed, from what this run measured beside it."""
    notes = []
    cores = meta["machine"]["cores_usable"]
    for goal in report.goals(run.results):
        if goal["met"] is not False:
            continue
        key = next(k for k in KEYS.values() if k.startswith(str(goal["section"])))
        t = run.timing.get(key, {})
        busy = max(t.get("load_before", 0), t.get("load_after", 0))
        why = goal.get("why") or (
            f"the host's load average was {busy} on {cores} cores during this section (the section's own "
            "services and load generator count in it; anything else running took CPU they needed)"
            if busy > cores
            else "the host was not overloaded during this section; see the section's table for what limited it"
        )
        notes.append(f"- §{goal['section']} {goal['goal']}: {goal['value']} vs. {goal['target']} — missed; {why}.")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short development run (about 3 minutes)")
    parser.add_argument("--sections", default=",".join(ALL), help="comma-separated section numbers (default: all)")
    parser.add_argument("--url", help="a running gateway to target instead of starting the suite (section 1 only)")
    parser.add_argument("--api-key", default="", help="the gateway's API key, with --url")
    parser.add_argument("--out", type=Path, help="results directory (default: loadtests/results/<timestamp>)")
    args = parser.parse_args(argv)
    progress = Progress()
    out = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    progress.say(f"make bench ({'quick' if args.quick else 'full'}), results in {out}")
    meta = machine.describe(stack.PG_DSN)
    m = meta["machine"]
    progress.say(
        f"machine: {m['cpu_model']}, {m['cores_usable']} cores, {m['memory_gib']} GiB, load {m['load_at_start']}"
    )
    started = time.monotonic()
    run = run_sections(args, out, progress)
    with progress.step("plots and report"):
        made = draw(run, out)
        meta.update(
            quick=args.quick,
            wall_s=time.monotonic() - started,
            load_at_end=machine.load(),
            sections=run.timing,
            skipped=run.skipped,
            target=args.url or "processes started by this run",
        )
        meta["notes"] = closing_notes(run, meta)
        (out / "results.json").write_text(json.dumps({"meta": meta, "results": run.results}, indent=2) + "\n")
        (out / "report.md").write_text(report.render(run.results, meta, made))
    for goal in report.goals(run.results):
        verdict = "—" if goal["met"] is None else ("met" if goal["met"] else "MISSED")
        progress.say(f"§{goal['section']} {goal['goal']}: {goal['value']} (target {goal['target']}): {verdict}")
    progress.say(f"done in {meta['wall_s'] / 60:.1f} min: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
