"""report.md from the sections' results: machine, versions, goals met or missed, tables, plots."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per acceptance goal: what was measured, the target, met or missed."""
    out: list[dict[str, Any]] = []
    for key, rows in (
        ("1_handler_styles", _goals_1),
        ("2_gateway_overhead", _goals_2),
        ("3_database_paths", _goals_3),
        ("4_worker_scaling", _goals_4),
        ("5_compute", _goals_5),
        ("6_video", _goals_6),
        ("1b_awaits_through_gateway", _goals_1b),
        ("7_tracing", _goals_7),
        ("8_users_under_load", _goals_8),
        ("9_access_log", _goals_9),
        ("10_recycle_under_load", _goals_10),
    ):
        if results.get(key):
            out += rows(results[key])
    return out


def _goals_1(s1: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    g = s1["goal"]
    out.append(
        {
            "section": 1,
            "goal": "async: 1000 concurrent 1 s requests",
            "value": f"{g['async_1000_wall_s']} s (cold connections: {g['async_1000_cold_wall_s']} s)",
            "target": "< 2 s",
            "met": g["async_1000_wall_s"] < 2.0,
        }
    )
    out.append(
        {
            "section": 1,
            "goal": "async vs def throughput at N=1000",
            "value": f"{g['async_over_sync_rps']}x (def measured at N={g['sync_rps_measured_at_n']})",
            "target": ">= 10x",
            "met": g["async_over_sync_rps"] >= 10,
        }
    )
    via = s1.get("via_gateway")
    if via:
        v = via["async_1000_via_gateway"]
        out.append(
            {
                "section": 1,
                "goal": "async: 1000 concurrent 1 s requests through the gateway",
                "value": f"{v['wall_s']} s, {v['errors']} errors (cold connections: {v['cold_wall_s']} s)",
                "target": "< 2 s, 0 errors",
                "met": v["wall_s"] < 2.0 and v["errors"] == 0,
                **({"why": _why1(v["cpu_s"])} if "cpu_s" in v else {}),
            }
        )
        out.append(
            {
                "section": 1,
                "goal": "io /healthz while /demo/blocking?delay=1 runs (vs while /demo/async runs)",
                "value": f"{via['healthz_s_during_blocking_median']} s "
                f"(during async: {via['healthz_s_during_async_median']} s)",
                "target": "~1 s (the loop is blocked)",
                "met": None,
            }
        )
    return out


def _goals_2(s2: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    out.append(
        {
            "section": 2,
            "goal": "gateway throughput as a share of direct io",
            "value": f"{s2['gateway_share_of_direct_rps']:.0%}",
            "target": f">= {s2['goal']['target']:.0%}",
            "met": s2["goal"]["met"],
            **({"why": _why2(s2["cpu_bound"])} if "cpu_bound" in s2 else {}),
        }
    )
    return out


def _why2(b: dict[str, Any]) -> str:
    """Section 2's bound, from the CPU its rounds spent (``sections.cpu_bound``)."""
    return (
        f"via the gateway the host's {b['cores']} cores were {b['via_host_cores_busy']} busy, and the gateway, "
        f"io, Redis and wrk spent {b['via_cpu_us_per_request']:.0f} µs of CPU per request together; direct, io's one "
        f"worker held {b['direct_io_worker_cores_busy']} of a core. On these cores the share cannot exceed "
        f"{b['share_ceiling']:.0%} whatever the services wait on"
    )


def _goals_3(s3: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    out.append(
        {
            "section": 3,
            "goal": "Redis cache hit vs async DB path throughput (lowest over c)",
            "value": f"{s3['goal']['value']}x",
            "target": ">= 1.5x",
            "met": s3["goal"]["met"],
        }
    )
    return out


def _goals_4(s4: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    out.append(
        {
            "section": 4,
            "goal": "2 workers vs 1 worker throughput",
            "value": f"{s4['two_over_one_rps']}x",
            "target": "(no target: measured)",
            "met": None,
        }
    )
    return out


def _goals_5(s5: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    out.append(
        {
            "section": 5,
            "goal": "process pool vs thread pool throughput",
            "value": f"{s5['ratios']['process_over_thread_throughput']:.2f}x",
            "target": ">= 1.8x",
            "met": s5["goals"]["process_over_thread_ge_1_8"],
        }
    )
    out.append(
        {
            "section": 5,
            "goal": "loop lag p99 with the pool saturated",
            "value": f"{s5['process']['loop_lag_p99_s'] * 1000:.2f} ms",
            "target": "< 10 ms",
            "met": s5["goals"]["loop_lag_p99_saturated_lt_10ms"],
        }
    )
    return out


def _goals_6(s6: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    out.append(
        {
            "section": 6,
            "goal": "worker overhead over plain ffmpeg (end to end)",
            "value": f"{s6['overhead_end_to_end']:+.1%}",
            "target": "< 10%",
            "met": s6["meets_goal"],
        }
    )
    return out


def _goals_1b(s1b: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "section": "1b",
            "goal": f"1000 concurrent 1 s awaits, gateway / direct io, {temp} (make up defaults)",
            "value": f"{s1b[temp + '_ratio']}x ({s1b[temp + '_gateway_s']} vs {s1b[temp + '_direct_s']} s), "
            f"{s1b['errors']} errors",
            "target": f"<= {target}x",
            "met": s1b[temp + "_ratio"] <= target and s1b["errors"] == 0,
            **({"why": _why1b(s1b["warm_cpu_s"])} if temp == "warm" and "warm_cpu_s" in s1b else {}),
        }
        for temp, target in (("warm", 1.25), ("cold", 1.6))
    ]


def _cpu_s(c: dict[str, float]) -> str:
    return (
        f"gateway {c['gateway']:.2f} s, io {c['io']:.2f} s, the client {c['client']:.2f} s "
        f"({c['host_cores_busy']:.2f} cores busy)"
    )


def _why1(c: dict[str, float]) -> str:
    """Section 1's burst through the gateway (one worker each), from the CPU it spent."""
    return (
        f"the warm burst spent {_cpu_s(c)} of CPU: each request waits its 1 s, and the gateway's one "
        "worker (one core at most) must also do the CPU work of 1000 requests in and 1000 out, on cores "
        "it shares with io and the client"
    )


def _why1b(c: dict[str, dict[str, float]]) -> str:
    """Section 1b's warm bursts (two workers each), from the CPU they spent (medians)."""
    return (
        f"a warm burst through the gateway spent {_cpu_s(c['gateway'])} of CPU, straight to io "
        f"{_cpu_s(c['direct'])}: the gateway's CPU on top of io's, on the same cores"
    )


def _goals_7(s7: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "section": 7,
            "goal": f"tracing {row['sampler']} / untraced, {row['route']} route",
            "value": f"{row['ratio']} ({row['rps_traced']} vs {row['rps_off']} req/s"
            + (f"; untraced control {row['control']})" if "control" in row else ")"),
            "target": f">= {row['target']}",
            "met": row["met"],
            **({"why": _why7(row)} if "cpu_ratio" in row else {}),
        }
        for row in s7["rows"]
    ]


def _why7(row: dict[str, Any]) -> str:
    """A §7 row's cost in CPU (``bench_tracing.measure_route``): what the traced request spent."""
    extra = row["cpu_us_traced"] - row["cpu_us_off"]
    return (
        f"a request cost the gateway and io {row['cpu_us_traced']:.0f} µs of CPU traced against "
        f"{row['cpu_us_off']:.0f} untraced ({extra:+.0f} µs, exporter threads included; untraced / traced "
        f"{row['cpu_ratio']}), so the traced stack does less in the same CPU time; the untraced control "
        f"read {row['control']}, this run's resolution"
    )


def _goals_8(s8: dict[str, Any]) -> list[dict[str, Any]]:
    out = [
        {
            "section": 8,
            "goal": f"GET /users/{{id}} via the gateway, c={s8['concurrency']}, cache {part}",
            "value": f"{s8[part]['errors']} errors, {s8[part]['rps']} req/s, p99 {s8[part]['p99_ms']} ms",
            "target": "0 errors",
            "met": s8[part]["errors"] == 0,
        }
        for part in ("hit", "miss")
    ]
    e = s8["expiry"]
    out.append(
        {
            "section": 8,
            "goal": f"TTL expiry under load ({e['keys']} keys, TTL {e['ttl_s']} s)",
            "value": f"{e['queries_per_key_per_expiry']} queries per key per expiry, {e['errors']} errors",
            "target": "<= 1, 0 errors",
            "met": e["queries_per_key_per_expiry"] <= 1.0 and e["errors"] == 0,
        }
    )
    return out


def _goals_9(s9: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "section": 9,
            "goal": "access log on / off throughput (a figure, no target)",
            "value": f"{s9['on_over_off_rps']} ({s9['on']['rps']} vs {s9['off']['rps']} req/s)",
            "target": "—",
            "met": None,
        }
    ]


def _goals_10(s10: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "section": 10,
            "goal": "requests lost while workers recycle under load",
            "value": f"{s10['lost']} of {s10['requests']} ({s10['recycles']} recycles)",
            "target": "0",
            "met": s10["lost"] == 0,
        }
    ]


def _section_under_load(key: str, s: dict[str, Any]) -> str:
    """Sections 8 and 10 as tables, each figure with the settings its run changed."""
    parts = ("hit", "miss", "expiry") if key.startswith("8") else (None,)
    rows = []
    for part in parts:
        p = s if part is None else s[part]
        settings = ", ".join(f"{k}={v}" for k, v in p["settings"].items())
        rows.append([part or "recycling", p["rps"], p["p50_ms"], p["p99_ms"], p["errors"], p["requests"], settings])
    text = f"{s['path']}, concurrency {s['concurrency']}, {s['seconds']} s each, two workers per service.\n\n"
    text += _table(["run", "req/s", "p50 ms", "p99 ms", "errors", "requests", "settings changed"], rows)
    if key.startswith("8"):
        e = s["expiry"]
        text += (
            f"\n\nExpiry: {e['queries']} queries for {e['keys']} keys over {e['expiries_per_key']} TTL cycles "
            f"of {e.get('cycle_s', e['ttl_s'])} s each (refresh-ahead at 0.8 x TTL) "
            f"= **{e['queries_per_key_per_expiry']}** per key per expiry. X-Cache: {e['x_cache']}."
        )
        if "loads_by_cause" in e:  # io's panorama_cache_loads_total; older runs counted Postgres' index scans
            text += f" Loads by cause (io's `panorama_cache_loads_total`): {e['loads_by_cause']}."
    else:
        text += f"\n\nWorker recycles during the run: {s['recycles']}; lost: **{s['lost']}**."
    return text


def _section1(s: dict[str, Any]) -> str:
    rows = [
        [
            r["style"],
            r["n"],
            r["wall_s"],
            r.get("cold_wall_s", ""),
            r["rps"],
            "—" if r["extrapolated"] else r["errors"],
            f"extrapolated from N={r['from_n']}" if r["extrapolated"] else "measured",
        ]
        for r in s["rows"]
    ]
    return (
        f"One io worker, thread limiter **{s['thread_tokens']} tokens** (= the sync DB pool), each request "
        "sleeps 1 s. Async rows: a second burst on the same client connections (warm); the first "
        "(cold: every connection opened inside the burst) beside it. `/demo/sync` and `/demo/blocking` "
        "rows marked *extrapolated* were not run: their time is N / the throughput measured at the "
        "largest N that was run (a `def` route serves `tokens` requests per second, a blocking one 1).\n\n"
        + _table(["route", "N", "completion (s)", "cold (s)", "req/s", "errors", "how"], rows)
    )


def _closed(rows: list[dict[str, Any]], key: str) -> str:
    return _table(
        [key, "c", "req/s", "p50 (ms)", "p99 (ms)", "requests", "errors"],
        [[r[key], r["concurrency"], r["rps"], r["p50_ms"], r["p99_ms"], r["requests"], r["errors"]] for r in rows],
    )


def _header(meta: dict[str, Any]) -> list[str]:
    """Title, mode, the machine and the versions."""
    m, v = meta["machine"], meta["versions"]
    return [
        f"# Panorama benchmark report — {meta['started_at']}",
        "",
        f"Mode: {'quick (development)' if meta['quick'] else 'full'}; total wall time "
        f"{meta['wall_s'] / 60:.1f} min. Target: {meta['target']}.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}; usable cores {m['cores_usable']} (online {m['cores_online']}); "
        f"memory {m['memory_gib']} GiB; {m['os']}",
        f"- Load average (1 min) at start {m['load_at_start']['1m']}, at end {meta['load_at_end']['1m']}; "
        "per section below. Other processes share this machine: a load above the core count means the "
        "figures understate what the suite does alone.",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
    ]


def _goals_table(results: dict[str, Any]) -> list[str]:
    """Every goal met, missed or measured, then the missed ones in one sentence."""
    rows = goals(results)
    lines = [
        "## Goals",
        "",
        _table(
            ["§", "figure", "value", "target", "result"],
            [
                [
                    g["section"],
                    g["goal"],
                    g["value"],
                    g["target"],
                    "—" if g["met"] is None else ("met" if g["met"] else "**MISSED**"),
                ]
                for g in rows
            ],
        ),
        "",
    ]
    missed = [g for g in rows if g["met"] is False]
    if missed:
        lines += [
            "**Missed:** "
            + "; ".join(f"§{g['section']} {g['goal']} ({g['value']}, target {g['target']})" for g in missed)
            + ". See the closing notes.",
            "",
        ]
    return lines


def _section1b(s: dict[str, Any]) -> list[str]:
    return [
        f"`GET {s['path']}` x 1000 at once, two workers each, medians of {s['rounds']} alternating "
        f"rounds (warm); cold = the first burst after start. Settings changed: {s['settings']}.\n",
        _table(
            ["", "gateway s", "direct io s", "ratio"],
            [[t, s[t + "_gateway_s"], s[t + "_direct_s"], s[t + "_ratio"]] for t in ("warm", "cold")],
        ),
    ]


def _section2(s: dict[str, Any], clients: dict[str, Any] | None) -> list[str]:
    rows = [{"via": n, "concurrency": s["concurrency"], **s[n]} for n in ("gateway", "io_direct")]
    lines = [
        f"{s['path']}, medians of {s['gateway']['rounds']} alternating rounds of {s['seconds']} s; "
        f"load generator: {s.get('load_generator', 'aiohttp')}.\n",
        _closed(rows, "via"),
        f"\nGateway keeps **{s['gateway_share_of_direct_rps']:.0%}** of direct throughput; "
        f"p50 overhead {s['p50_overhead_ms']} ms. X-Cache seen: {s['x_cache']}.",
    ]
    if b := s.get("cpu_bound"):
        via, direct = s["gateway"], s["io_direct"]
        lines.append(
            f"\nCPU per request (µs, medians of the rounds): via the gateway, gateway {via['cpu_us_gateway']}, "
            f"io {via['cpu_us_io']}, Redis {via.get('cpu_us_redis', '?')}, wrk {via['cpu_us_generator']}, host "
            f"{via['host_cores_busy']} of {b['cores']} cores busy; direct, io {direct['cpu_us_io']}, Redis "
            f"{direct.get('cpu_us_redis', '?')}, wrk {direct['cpu_us_generator']}, host "
            f"{direct['host_cores_busy']} cores busy. Ceiling of the share on this host: "
            f"**{b['share_ceiling']:.0%}** (`sections.cpu_bound`)."
        )
    if clients:
        lines.append("\nClient library as the caller of io (the gateway's upstream choice), same load:\n")
        lines.append(_closed(clients["rows"], "client"))
    return lines


def _section3(s: dict[str, Any]) -> list[str]:
    return [
        f"One io worker each; medians of {s['rounds']} alternating rounds of {s['seconds']} s. "
        "`async_db`: `GET /users/{id}` with ids cycling past a one-entry in-process cache "
        "(every read goes to Postgres); `sync_db`: `GET /sync/users/{id}` (`def`, psycopg, "
        "thread pool); `cache_hit`: `GET /users/{id}` on 100 ids held in Redis.\n",
        _closed(s["rows"], "path"),
        "\n"
        + _table(
            ["c", "cache/async DB", "cache/def DB", "async/def DB"],
            [
                [c, r["cache_over_async_db"], r["cache_over_sync_db"], r["async_over_sync_db"]]
                for c, r in s["ratios"].items()
            ],
        ),
        f"\nX-Cache answers counted: {s['x_cache']}.",
    ]


def _section4(s: dict[str, Any]) -> list[str]:
    rows = [{"workers": n, "concurrency": s["concurrency"], **s[n]} for n in ("1_worker", "2_workers")]
    return [
        f"{s['path']}. The load generator (one Python process) shares the 2 cores.\n",
        _closed(rows, "workers"),
        f"\n2 workers / 1 worker: **{s['two_over_one_rps']}x**.",
    ]


def _section5(s: dict[str, Any]) -> list[str]:
    header = ["where", "tasks/s", "p50 (s)", "p99 (s)", "loop lag p99 (ms)", "loop lag max (ms)", "503s", "errors"]
    rows = [
        [
            n,
            round(s[n]["throughput_rps"], 2),
            round(s[n]["latency_p50_s"], 3),
            round(s[n]["latency_p99_s"], 3),
            round(s[n]["loop_lag_p99_s"] * 1000, 2),
            round(s[n]["loop_lag_max_s"] * 1000, 2),
            s[n]["rejected_503"],
            s[n]["errors"],
        ]
        for n in ("process", "thread", "inline")
    ]
    return [
        _table(header, rows),
        f"\nn={s['n']} (~{s['task_seconds_target']} s of CPU), pool {s['pool_size']} "
        f"({s['start_method']}), threads {s['thread_pool_size']}, {s['clients']} clients, "
        f"{s['rounds']} rounds x {s['phase_seconds']} s; per-round ratios "
        f"{[round(x, 2) for x in s['ratios']['process_over_thread_per_round']]}; host load "
        f"{s['host_load_1m']}.",
    ]


def _section6(s: dict[str, Any]) -> list[str]:
    rows = [
        ["clip", s["clip"]],
        ["transport", s["transport"]],
        ["rounds", s["rounds"]],
        ["direct ffmpeg, median", f"{s['direct_median_s']} s"],
        ["through the worker (publish → result), median", f"{s['worker_end_to_end_median_s']} s"],
        ["ffmpeg inside the worker, median", f"{s['worker_ffmpeg_median_s']} s"],
        [
            "queue + checks per job, median",
            f"{s['queue_and_checks_median_s']} s ({s['overhead_fixed_share']:.1%} of direct)",
        ],
        ["overhead end to end", f"{s['overhead_end_to_end']:+.1%}"],
        [f"jobs per minute (concurrency {s['concurrency']})", s["jobs_per_minute"]],
    ]
    return [_table(["figure", "value"], rows)]


def _settings7(settings: dict[str, str] | None) -> str:
    """What every §7 stack ran with (before the run that recorded them: SQLite, the access log off)."""
    if not settings:
        return "Stacks on embedded SQLite, `PANORAMA_LOG_LEVEL=WARNING`, `PANORAMA_MAX_REQUESTS=0`."
    return "Every stack as `make up` runs it: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."


def _section7(s: dict[str, Any]) -> list[str]:
    header = ["route", "sampler", "untraced req/s", "traced req/s", "ratio", "target", "settings changed"]
    keys: tuple[str, ...] = ("route", "sampler", "rps_off", "rps_traced", "ratio", "target", "settings")
    cpu = all("cpu_ratio" in r for r in s["rows"])
    if cpu:
        header[5:5] = ["CPU µs/req untraced", "CPU µs/req traced", "CPU untraced / traced"]
        keys = (*keys[:5], "cpu_us_off", "cpu_us_traced", "cpu_ratio", *keys[5:])
    return [
        f"Medians of {s['rounds']} alternating rounds of {s['round_seconds']} s at concurrency "
        f"{s['concurrency']}, one worker each, load generator: {s.get('load_generator', 'aiohttp')}; "
        f"the receiver decoded {s['spans_decoded']} spans after the rounds ({', '.join(s['span_names'])}). "
        + _settings7(s.get("settings"))
        + "\n",
        _table(header, [[r[k] for k in keys] for r in s["rows"]]),
        *(
            [
                "\nCPU: what the stack's gateway and io (every thread: the loop, the span exporter) spent per "
                "request, medians of the rounds (`lib/cpuuse.py`)."
            ]
            if cpu
            else []
        ),
        *_control7(s.get("control")),
    ]


def _control7(control: dict[str, float] | None) -> list[str]:
    if not control:
        return []
    read = ", ".join(f"{ratio} ({route} route)" for route, ratio in control.items())
    spread = ", ".join(f"{abs(1 - ratio):.3f}" for ratio in control.values())
    return [
        f"\nResolution: a second untraced stack, identical to the first, read {read} of its throughput "
        f"in the same rounds. A traced ratio within that distance of its target ({spread}) is not told "
        "apart from the target by this run."
    ]


def _section9(s: dict[str, Any]) -> list[str]:
    rows = [{"access log": n, "concurrency": s["concurrency"], **s[n]} for n in ("on", "off")]
    return [
        f"{s['path']}, medians of alternating rounds of {s['seconds']} s; settings: {s['settings']}.\n",
        _closed(rows, "access log"),
        f"\nWith the access log on: **{s['on_over_off_rps']:.0%}** of the throughput without it.",
    ]


# Each section's title and body, in the report's order; a body takes the section's result and all results.
SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]]] = {
    "1_handler_styles": ("1. Handler styles: async vs `def` vs blocking", lambda s, _: [_section1(s)]),
    "2_gateway_overhead": ("2. Gateway overhead", lambda s, r: _section2(s, r.get("2_client_comparison"))),
    "3_database_paths": ("3. Database path: async vs `def` vs cache hit", lambda s, _: _section3(s)),
    "4_worker_scaling": ("4. Worker scaling", lambda s, _: _section4(s)),
    "5_compute": ("5. Compute: process pool vs thread pool, loop lag", lambda s, _: _section5(s)),
    "6_video": ("6. Video: worker vs plain ffmpeg", lambda s, _: _section6(s)),
    "1b_awaits_through_gateway": ("1b. 1000 concurrent awaits: gateway vs direct io", lambda s, _: _section1b(s)),
    "7_tracing": ("7. Tracing: off / 10 % / always on", lambda s, _: _section7(s)),
    "8_users_under_load": (
        "8. GET /users/{id} at c=256: hit, miss, TTL expiry",
        lambda s, _: [_section_under_load("8_users_under_load", s)],
    ),
    "9_access_log": ("9. Access log: on (default) vs off", lambda s, _: _section9(s)),
    "10_recycle_under_load": (
        "10. Worker recycling under load",
        lambda s, _: [_section_under_load("10_recycle_under_load", s)],
    ),
}


def _section(key: str, results: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> list[str]:
    """One section: its title, why it was not run or its timing, body and plot."""
    title, body = SECTIONS[key]
    s = results.get(key)
    lines = [f"## {title}", ""]
    if s is None:
        return [*lines, f"Not run: {meta['skipped'].get(key, 'not selected')}.", ""]
    timing = meta["sections"][key]
    lines += [f"_{timing['seconds']:.0f} s, load average {timing['load_before']} → {timing['load_after']}._", ""]
    lines += body(s, results)
    if key in plots:
        lines += ["", f"![{title}]({plots[key]})"]
    return [*lines, ""]


def render(results: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    lines = _header(meta) + _goals_table(results)
    for key in SECTIONS:
        lines += _section(key, results, meta, plots)
    lines += ["## Closing notes", ""]
    lines += meta.get("notes") or ["Every goal with a target was met in this run."]
    return "\n".join(lines) + "\n"
