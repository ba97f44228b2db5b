"""Write monitoring/rules-test.yaml: promtool unit tests, for every alert, that fire and do not fire.

Each case is synthetic series, an evaluation time, and the alerts expected then, given by their
labels and the text the summary must show for ``$value`` (e.g. ``300ms``): the summary, description
and runbook_url the test expects are the rule's own templates with those filled in, so a test fails
when an expression, a ``for:`` or a summary's wording/formatting changes without it.
Run ``python monitoring/make_rules_test.py`` after editing the rules or the cases;
infra/tests/test_monitoring.py checks the committed file is current.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "charts/panorama/files/panorama-rules.yaml"
OUT = ROOT / "monitoring/rules-test.yaml"
RULES_FROM_TEST = "../charts/panorama/files/panorama-rules.yaml"


def s(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


IO_A = {"service": "io", "instance": "io-a"}
IO_B = {"service": "io", "instance": "io-b"}
GW = {"service": "gateway", "instance": "gw-a"}
CO_A = {"service": "compute", "instance": "compute-a"}
CO_B = {"service": "compute", "instance": "compute-b"}
VW = {"service": "video-worker", "instance": "vw-a"}

# (alert, description of the case, input series, [(eval_time, [(labels, $value as shown)])])
CASES: list[tuple[str, str, list[dict[str, str]], list[tuple[str, list[tuple[dict[str, str], str]]]]]] = [
    (
        "PanoramaEventLoopLagging",
        "io-a lags 300 ms for 10 min (fires after 2m), io-b 10 ms (never)",
        [
            s("panorama_event_loop_lag_seconds", {**IO_A, "stat": "p99"}, "0.3x10"),
            s("panorama_event_loop_lag_seconds", {**IO_A, "stat": "max"}, "0.9x10"),
            s("panorama_event_loop_lag_seconds", {**IO_B, "stat": "p99"}, "0.01x10"),
        ],
        [("1m", []), ("5m", [(IO_A, "300ms")])],
    ),
    (
        "PanoramaEventLoopBlocked",
        "two incidents on io-a's /demo/blocking; io-b's counter stays flat",
        [
            s("panorama_event_loop_blocked_total", {**IO_A, "route": "/demo/blocking"}, "0 0 1 2 2 2 2 2 2 2 2"),
            s("panorama_event_loop_blocked_total", {**IO_B, "route": "/demo/blocking"}, "3x10"),
        ],
        [("1m", []), ("3m", [({**IO_A, "route": "/demo/blocking"}, "")]), ("10m", [])],
    ),
    (
        "PanoramaEventLoopCpuStarved",
        "gw-a's loop waits 0.5 s/s for a CPU; io-a 0.05 s/s",
        [
            s("panorama_event_loop_cpu_wait_seconds_total", GW, "0+30x15"),
            s("panorama_event_loop_cpu_wait_seconds_total", IO_A, "0+3x15"),
        ],
        [("4m", []), ("10m", [(GW, "50%")])],
    ),
    (
        "PanoramaThreadTokensExhausted",
        "io-a uses all 40 tokens; io-b 39 of 40",
        [
            s("panorama_thread_limiter_tokens", {**IO_A, "state": "total"}, "40x10"),
            s("panorama_thread_limiter_tokens", {**IO_A, "state": "in_use"}, "40x10"),
            s("panorama_thread_limiter_tokens", {**IO_B, "state": "total"}, "40x10"),
            s("panorama_thread_limiter_tokens", {**IO_B, "state": "in_use"}, "39x10"),
        ],
        [("0m", []), ("3m", [(IO_A, "")])],
    ),
    (
        "PanoramaDbPoolExhausted",
        "io-a's async pool 10/10 checked out; its sync pool 3/5",
        [
            s("panorama_db_pool_connections", {**IO_A, "pool": "async", "state": "size"}, "10x10"),
            s("panorama_db_pool_connections", {**IO_A, "pool": "async", "state": "checked_out"}, "10x10"),
            s("panorama_db_pool_connections", {**IO_A, "pool": "sync", "state": "size"}, "5x10"),
            s("panorama_db_pool_connections", {**IO_A, "pool": "sync", "state": "checked_out"}, "3x10"),
        ],
        [("0m", []), ("3m", [({**IO_A, "pool": "async"}, "")])],
    ),
    (
        "PanoramaDbPoolWaitsGrowing",
        "io-a waits 200 ms per checkout on average; io-b 1 ms",
        [
            s("panorama_db_pool_wait_seconds_sum", {**IO_A, "pool": "async"}, "0+12x10"),
            s("panorama_db_pool_wait_seconds_count", {**IO_A, "pool": "async"}, "0+60x10"),
            s("panorama_db_pool_wait_seconds_sum", {**IO_B, "pool": "async"}, "0+0.06x10"),
            s("panorama_db_pool_wait_seconds_count", {**IO_B, "pool": "async"}, "0+60x10"),
        ],
        [("2m", []), ("6m", [({**IO_A, "pool": "async"}, "200ms")])],
    ),
    (
        "PanoramaProcessPoolSaturated",
        "compute-a: 2/2 busy and 3 queued; compute-b: 2/2 busy, nothing queued (full, not saturated)",
        [
            s("panorama_process_pool_tasks", {**CO_A, "pool": "p", "state": "size"}, "2x10"),
            s("panorama_process_pool_tasks", {**CO_A, "pool": "p", "state": "busy"}, "2x10"),
            s("panorama_process_pool_tasks", {**CO_A, "pool": "p", "state": "queued"}, "3x10"),
            s("panorama_process_pool_tasks", {**CO_B, "pool": "p", "state": "size"}, "2x10"),
            s("panorama_process_pool_tasks", {**CO_B, "pool": "p", "state": "busy"}, "2x10"),
            s("panorama_process_pool_tasks", {**CO_B, "pool": "p", "state": "queued"}, "0x10"),
        ],
        [("0m", []), ("3m", [({**CO_A, "pool": "p"}, "3")])],
    ),
    (
        "PanoramaProcessPoolRejecting",
        "compute-a answers 1 request/s with 503; compute-b only 200s",
        [
            s(
                "panorama_http_request_duration_seconds_count",
                {**CO_A, "method": "POST", "route": "/compute", "status": "503"},
                "0+60x10",
            ),
            s(
                "panorama_http_request_duration_seconds_count",
                {**CO_B, "method": "POST", "route": "/compute", "status": "200"},
                "0+60x10",
            ),
        ],
        [("1m", []), ("5m", [(CO_A, "1")])],
    ),
    (
        "PanoramaUpstreamPoolExhausted",
        "gw-a: 100/100 connections to compute in use, 20/100 to io",
        [
            s("panorama_upstream_connections", {**GW, "upstream": "compute", "state": "limit"}, "100x10"),
            s("panorama_upstream_connections", {**GW, "upstream": "compute", "state": "in_use"}, "100x10"),
            s("panorama_upstream_connections", {**GW, "upstream": "io", "state": "limit"}, "100x10"),
            s("panorama_upstream_connections", {**GW, "upstream": "io", "state": "in_use"}, "20x10"),
        ],
        [("0m", []), ("3m", [({**GW, "upstream": "compute"}, "")])],
    ),
    (
        "PanoramaCeleryQueueGrowing",
        "video grows by 2 a minute; thumbs stays at 50 (deep but not growing)",
        [
            s("panorama_celery_queue_depth", {**VW, "queue": "video"}, "0+2x40"),
            s("panorama_celery_queue_depth", {**VW, "queue": "thumbs"}, "50x40"),
        ],
        [("10m", []), ("30m", [({"queue": "video"}, "60")])],
    ),
    (
        "PanoramaCeleryTasksFailing",
        "one failure of process_video at minute 3; none for the other task",
        [
            s(
                "panorama_celery_task_duration_seconds_count",
                {**VW, "task": "panorama.video_worker.process_video", "state": "FAILURE"},
                "0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            ),
            s("panorama_celery_task_duration_seconds_count", {**VW, "task": "other", "state": "SUCCESS"}, "0+5x20"),
        ],
        [("2m", []), ("5m", [({"task": "panorama.video_worker.process_video"}, "1")]), ("20m", [])],
    ),
    (
        "PanoramaCeleryTasksRetrying",
        "process_video retries once a minute; another task twice in all",
        [
            s(
                "panorama_celery_task_duration_seconds_count",
                {**VW, "task": "panorama.video_worker.process_video", "state": "RETRY"},
                "0+1x30",
            ),
            s(
                "panorama_celery_task_duration_seconds_count",
                {**VW, "task": "other", "state": "RETRY"},
                "0 1 2 2 2 2 2",
            ),
        ],
        [("5m", []), ("20m", [({"task": "panorama.video_worker.process_video"}, "10")])],
    ),
    (
        "PanoramaHighErrorRate",
        "io: 10% 5xx; gateway: 1% 5xx",
        [
            s(
                "panorama_http_request_duration_seconds_count",
                {**IO_A, "method": "GET", "route": "/users/{user_id}", "status": "500"},
                "0+6x20",
            ),
            s(
                "panorama_http_request_duration_seconds_count",
                {**IO_A, "method": "GET", "route": "/users/{user_id}", "status": "200"},
                "0+54x20",
            ),
            s(
                "panorama_http_request_duration_seconds_count",
                {**GW, "method": "GET", "route": "/users/{user_id}", "status": "502"},
                "0+1x20",
            ),
            s(
                "panorama_http_request_duration_seconds_count",
                {**GW, "method": "GET", "route": "/users/{user_id}", "status": "200"},
                "0+99x20",
            ),
        ],
        [("4m", []), ("12m", [({"service": "io"}, "10%")])],
    ),
    (
        "PanoramaGatewayTimeouts",
        "gateway /compute answers 504 once a second; io's 504s (not the gateway) do not count",
        [
            s(
                "panorama_http_request_duration_seconds_count",
                {**GW, "method": "POST", "route": "/compute", "status": "504"},
                "0+60x20",
            ),
            s(
                "panorama_http_request_duration_seconds_count",
                {**IO_A, "method": "GET", "route": "/proxy", "status": "504"},
                "0+60x20",
            ),
        ],
        [("4m", []), ("12m", [({"service": "gateway", "route": "/compute"}, "1")])],
    ),
    (
        "PanoramaTargetDown",
        "io-a's scrape fails for 5 min; io-b is up",
        [
            s("up", {**IO_A, "job": "panorama"}, "0x10"),
            s("up", {**IO_B, "job": "panorama"}, "1x10"),
        ],
        [("1m", []), ("4m", [({**IO_A, "job": "panorama"}, "0")])],
    ),
]


def render(template: str, labels: dict[str, str], value: str) -> str:
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return re.sub(r"\{\{ \$value( \| \w+)? \}\}", value, text)


def build() -> str:
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    missing = set(rules) - {c[0] for c in CASES}
    if missing:
        raise SystemExit(f"alerts without a test case: {sorted(missing)}")
    tests: list[dict[str, Any]] = []
    for alert, what, series, evals in CASES:
        rule = rules[alert]
        checks = []
        for at, expected in evals:
            exp = []
            for labels, value in expected:
                exp.append(
                    {
                        "exp_labels": {**rule.get("labels", {}), **labels},
                        "exp_annotations": {k: render(v, labels, value) for k, v in rule["annotations"].items()},
                    }
                )
            checks.append({"eval_time": at, "alertname": alert, "exp_alerts": exp})
        tests.append({"name": f"{alert}: {what}", "interval": "1m", "input_series": series, "alert_rule_test": checks})
    doc = {"rule_files": [RULES_FROM_TEST], "evaluation_interval": "1m", "tests": tests}
    header = "# Generated by monitoring/make_rules_test.py from its CASES: edit there, then run it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=200)


if __name__ == "__main__":
    text = build()
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text else "monitoring/rules-test.yaml is stale")
    OUT.write_text(text)
