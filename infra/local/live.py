"""`make up`'s live page: every pool of the suite on one screen, refreshed every second.

A small stdlib HTTP server on 127.0.0.1 only (``PANORAMA_LIVE_PORT``, default 8090; 0 turns it
off). Read-only: it answers GET ``/`` (live.html) and GET ``/api/snapshot``, nothing else. The
snapshot is built here, server-side: the services' ``/metrics``, compute's ``/debug/pool``, io's
``/debug/locks`` (with the internal token when one is set; the page never sees it), and the
progress of each running video job (the gateway's ``/task/{id}`` with the API key, for the jobs
recorded in the storage folder and not done). So the page is internal exactly like ``/debug/*``:
it listens on loopback only, as the services do under make up, and never leaves the laptop; it
has no way to change anything. No dependency beyond the dev venv (prometheus_client's parser,
httpx); the page is plain HTML, CSS and canvas.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from panorama.core.internal import INTERNAL_TOKEN_HEADER as TOKEN_HEADER

PAGE = Path(__file__).with_name("live.html")

MAX_JOBS = 8


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """``{sample name: [(labels, value)]}`` of a Prometheus text exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def pick(metrics: Mapping[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    values = [v for lab, v in metrics.get(name, []) if all(lab.get(k) == want for k, want in labels.items())]
    return sum(values) if values else None


def by(metrics: Mapping[str, list[tuple[dict[str, str], float]]], name: str, key: str) -> dict[str, dict[str, float]]:
    """``{labels[key]: {state: value}}`` of a gauge with a ``state`` label (pools)."""
    out: dict[str, dict[str, float]] = {}
    for labels, value in metrics.get(name, []):
        out.setdefault(labels.get(key, ""), {})[labels.get("state", "value")] = value
    return out


class Sources:
    """Where the suite runs and how to read it (the same URLs and secrets make up gives the services)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        api_key: str,
        internal_token: str | None = None,
        storage_dir: Path | None = None,
        metrics_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.urls = dict(urls)  # gateway, io, compute, video-worker (its /metrics)
        # Where a service's /metrics is, when not on its URL (the gateway's master serves it apart).
        self.metrics_urls = {**self.urls, **(metrics_urls or {})}
        self.api_key = api_key
        self.internal_token = internal_token
        self.storage_dir = storage_dir
        self.client = httpx.Client(timeout=2.0)
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="live")

    def close(self) -> None:
        """Close the HTTP client's connections and stop the reader threads."""
        self.pool.shutdown(wait=True)
        self.client.close()

    def _get(self, url: str, headers: Mapping[str, str] | None = None) -> httpx.Response | None:
        try:
            return self.client.get(url, headers=dict(headers or {}))
        except httpx.HTTPError:
            return None

    def _internal(self) -> dict[str, str]:
        return {TOKEN_HEADER: self.internal_token} if self.internal_token else {}

    def service(self, name: str) -> dict[str, Any]:
        response = self._get(self.metrics_urls[name] + "/metrics")
        if response is None or response.status_code != 200:
            return {"up": False}
        m = parse_metrics(response.text)
        return {
            "up": True,
            "requests": pick(m, "panorama_http_request_duration_seconds_count"),
            "errors_5xx": sum(
                v
                for lab, v in m.get("panorama_http_request_duration_seconds_count", [])
                if lab.get("status", "").startswith("5")
            ),
            "loop_lag": {s: pick(m, "panorama_event_loop_lag_seconds", stat=s) for s in ("current", "p99", "max")},
            "loop_blocked": pick(m, "panorama_event_loop_blocked_total") or 0.0,  # no series before the first
            "loop_starved": pick(m, "panorama_event_loop_starved_total"),
            "loop_cpu_wait": pick(m, "panorama_event_loop_cpu_wait_seconds_total"),
            "thread_tokens": {s: pick(m, "panorama_thread_limiter_tokens", state=s) for s in ("in_use", "total")},
            "db_pools": by(m, "panorama_db_pool_connections", "pool"),
            "process_pools": by(m, "panorama_process_pool_tasks", "pool"),
            "upstreams": by(m, "panorama_upstream_connections", "upstream"),
            "celery_queue": {lab.get("queue", ""): v for lab, v in m.get("panorama_celery_queue_depth", [])},
        }

    def compute_pools(self) -> dict[str, Any] | None:
        response = self._get(self.urls["compute"] + "/debug/pool", self._internal())
        return response.json() if response is not None and response.status_code == 200 else None

    def io_locks(self) -> dict[str, Any] | None:
        response = self._get(self.urls["io"] + "/debug/locks", self._internal())
        return response.json() if response is not None and response.status_code == 200 else None

    def jobs(self) -> list[dict[str, Any]]:
        """The newest video jobs not done yet, with their status and progress from the gateway."""
        if self.storage_dir is None or not (self.storage_dir / "jobs").is_dir():
            return []
        records = [
            p for p in (self.storage_dir / "jobs").glob("*.json")
            if not p.name.endswith(".done.json") and not p.with_name(p.stem + ".done.json").exists()
        ]  # fmt: skip
        records.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        out = []
        for record in records[:MAX_JOBS]:
            response = self._get(f"{self.urls['gateway']}/task/{record.stem}", {"X-API-Key": self.api_key})
            if response is not None and response.status_code == 200:
                body = response.json()
                if body.get("status") not in ("SUCCESS", "FAILURE"):
                    out.append({"id": record.stem, "status": body.get("status"), "progress": body.get("progress", 0)})
        return out

    def snapshot(self) -> dict[str, Any]:
        started = time.monotonic()
        services = {name: self.pool.submit(self.service, name) for name in self.urls}
        pools, locks, jobs = (
            self.pool.submit(self.compute_pools),
            self.pool.submit(self.io_locks),
            self.pool.submit(self.jobs),
        )
        return {
            "at": time.time(),
            "services": {name: future.result() for name, future in services.items()},
            "compute_pools": pools.result(),
            "io_locks": locks.result(),
            "jobs": jobs.result(),
            "took_ms": round((time.monotonic() - started) * 1000, 1),
        }


class Handler(BaseHTTPRequestHandler):
    sources: Sources

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE.read_bytes())
        elif self.path == "/api/snapshot":
            self._send(200, "application/json", json.dumps(self.sources.snapshot()).encode())
        elif self.path == "/favicon.ico":
            self._send(204, "image/x-icon", b"")
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
        )
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # one line per second is noise
        pass


def serve(sources: Sources, port: int = 8090) -> ThreadingHTTPServer:
    """Start the page on 127.0.0.1:``port`` (0: a free port) in a daemon thread; returns the server."""
    handler = type("LiveHandler", (Handler,), {"sources": sources})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)  # loopback only, never 0.0.0.0
    threading.Thread(target=server.serve_forever, name="live-page", daemon=True).start()
    return server


def port_from_env() -> int:
    return int(os.environ.get("PANORAMA_LIVE_PORT", "8090"))
