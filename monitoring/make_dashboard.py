"""Write charts/panorama/files/panorama-dashboard.json: the Grafana dashboard, one row per concurrency model.

Rows: HTTP, event loop, thread pool, DB pools, process pool, upstream pools, Celery. Every panel is
per service and per pod (``service``/``instance`` labels, the ``$service``/``$instance`` variables).
Pool label values (``pool="..."``) are never spelled out: panels group by the label, so renaming
the pools changes nothing here. Run ``python monitoring/make_dashboard.py`` after editing;
charts/tests/test_monitoring.py checks the committed file is current, and
infra/tests/test_monitoring_live.py runs every query against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "charts/panorama/files/panorama-dashboard.json"
SEL = 'service=~"$service", instance=~"$instance"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ROW_HEIGHT, PANEL_HEIGHT, GRID_WIDTH = 1, 8, 24

Target = tuple[str, str]  # (expr, legend)
Panel = tuple[str, str, list[Target]]  # (title, unit, targets)
Row = tuple[str, list[Panel]]  # (title, panels)

ROWS: list[Row] = [
    (
        "HTTP",
        [
            (
                "Requests/s by status",
                "reqps",
                [
                    (
                        f"sum by (service, status) (rate(panorama_http_request_duration_seconds_count{{{SEL}}}[1m]))",
                        "{{service}} {{status}}",
                    )
                ],
            ),
            (
                "p99 latency by route",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (service, route, le) "
                        f"(rate(panorama_http_request_duration_seconds_bucket{{{SEL}}}[1m])))",
                        "{{service}} {{route}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Event loop",
        [
            (
                "Loop lag p99 per pod",
                "s",
                [
                    (
                        f'max by (service, instance) (panorama_event_loop_lag_seconds{{stat="p99", {SEL}}})',
                        "{{instance}}",
                    )
                ],
            ),
            (
                "Blocked-loop incidents by route",
                "short",
                [
                    (
                        f"sum by (service, route) (increase(panorama_event_loop_blocked_total{{{SEL}}}[5m]))",
                        "{{service}} {{route}}",
                    )
                ],
            ),
            (
                "Loop thread waiting for a CPU (share of time)",
                "percentunit",
                [
                    (
                        f"sum by (service, instance) (rate(panorama_event_loop_cpu_wait_seconds_total{{{SEL}}}[1m]))",
                        "{{instance}}",
                    )
                ],
            ),
            (
                "Starved beats (not blocked) by reason",
                "short",
                [
                    (
                        f"sum by (service, instance, reason) (increase(panorama_event_loop_starved_total{{{SEL}}}[5m]))",
                        "{{instance}} {{reason}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Thread pool (def routes)",
        [
            (
                "Thread tokens in use / total per pod",
                "short",
                [
                    (
                        f'sum by (service, instance) (panorama_thread_limiter_tokens{{state="in_use", {SEL}}})',
                        "{{instance}} in use",
                    ),
                    (
                        f'sum by (service, instance) (panorama_thread_limiter_tokens{{state="total", {SEL}}})',
                        "{{instance}} total",
                    ),
                ],
            ),
        ],
    ),
    (
        "DB pools",
        [
            (
                "Connections checked out / size per pod and pool",
                "short",
                [
                    (
                        f'sum by (service, instance, pool) (panorama_db_pool_connections{{state="checked_out", {SEL}}})',
                        "{{instance}} {{pool}} checked out",
                    ),
                    (
                        f'sum by (service, instance, pool) (panorama_db_pool_connections{{state="size", {SEL}}})',
                        "{{instance}} {{pool}} size",
                    ),
                ],
            ),
            (
                "Wait for a connection p99",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (service, instance, pool, le) "
                        f"(rate(panorama_db_pool_wait_seconds_bucket{{{SEL}}}[1m])))",
                        "{{instance}} {{pool}}",
                    )
                ],
            ),
            (
                "Read-through loads by cause (one query each; refresh-ahead keeps miss low)",
                "ops",
                [
                    (
                        f"sum by (service, instance, cache, cause) (rate(panorama_cache_loads_total{{{SEL}}}[1m]))",
                        "{{instance}} {{cache}} {{cause}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Process pool (compute)",
        [
            (
                "Tasks busy / queued / size per pod and pool",
                "short",
                [
                    (
                        f"sum by (service, instance, pool, state) (panorama_process_pool_tasks{{{SEL}}})",
                        "{{instance}} {{pool}} {{state}}",
                    )
                ],
            ),
            (
                "Rejected (503) per pod",
                "reqps",
                [
                    (
                        f'sum by (service, instance) (rate(panorama_http_request_duration_seconds_count{{status="503", {SEL}}}[1m]))',
                        "{{instance}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Upstream pools (gateway)",
        [
            (
                "Sockets in use / limit per pod and upstream",
                "short",
                [
                    (
                        f'sum by (service, instance, upstream) (panorama_upstream_connections{{state="in_use", {SEL}}})',
                        "{{instance}} {{upstream}} in use",
                    ),
                    (
                        f'sum by (service, instance, upstream) (panorama_upstream_connections{{state="limit", {SEL}}})',
                        "{{instance}} {{upstream}} limit",
                    ),
                ],
            ),
        ],
    ),
    (
        "Celery (video worker)",
        [
            ("Queue depth", "short", [("max by (queue) (panorama_celery_queue_depth)", "{{queue}}")]),
            (
                "Tasks/s by state",
                "ops",
                [
                    (
                        "sum by (task, state) (rate(panorama_celery_task_duration_seconds_count[5m]))",
                        "{{task}} {{state}}",
                    )
                ],
            ),
            (
                "Task duration p95",
                "s",
                [
                    (
                        "histogram_quantile(0.95, sum by (task, le) (rate(panorama_celery_task_duration_seconds_bucket[5m])))",
                        "{{task}}",
                    )
                ],
            ),
        ],
    ),
]


def build() -> dict[str, Any]:
    return {
        "title": "Panorama: concurrency",
        "uid": "panorama-concurrency",
        "description": "One row per concurrency model; per service and per pod. Alerts: charts/panorama/files/panorama-rules.yaml",
        "tags": ["panorama"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {}},
                variable("service", "label_values(panorama_http_request_duration_seconds_count, service)"),
                variable(
                    "instance",
                    'label_values(panorama_http_request_duration_seconds_count{service=~"$service"}, instance)',
                ),
            ]
        },
        "panels": layout(ROWS),
    }


def layout(rows: list[Row]) -> list[dict[str, Any]]:
    """Each row's header, then its panels side by side in equal widths, top to bottom; ids in order."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row_panels in rows:
        panels.append(row(title, len(panels) + 1, y))
        y += ROW_HEIGHT
        width = GRID_WIDTH // len(row_panels)
        for i, (panel_title, unit, targets) in enumerate(row_panels):
            grid = {"h": PANEL_HEIGHT, "w": width, "x": i * width, "y": y}
            panels.append(timeseries(panel_title, len(panels) + 1, grid, unit, targets))
        y += PANEL_HEIGHT
    return panels


def row(title: str, panel_id: int, y: int) -> dict[str, Any]:
    return {
        "type": "row",
        "title": title,
        "id": panel_id,
        "collapsed": False,
        "gridPos": {"h": ROW_HEIGHT, "w": GRID_WIDTH, "x": 0, "y": y},
        "panels": [],
    }


def timeseries(title: str, panel_id: int, grid: dict[str, int], unit: str, targets: list[Target]) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "id": panel_id,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + k), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for k, (expr, legend) in enumerate(targets)
        ],
    }


def variable(name: str, query: str) -> dict[str, Any]:
    """A dashboard variable over a label's values, "All" by default."""
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
    }


def text() -> str:
    return json.dumps(build(), indent=2) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target, with the variables set to "all"."""
    return [
        (panel["title"], target["expr"].replace("$service", ".*").replace("$instance", ".*"))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if OUT.exists() and OUT.read_text() == text() else "panorama-dashboard.json is stale")
    OUT.write_text(text())
