"""The alert rules and the dashboard, proven against a real Prometheus scraping a running suite.

Runs when ``PANORAMA_MONITORING_TEST=1`` (and Debian's ``prometheus`` is installed; .ci/run installs
it): starts gateway, io, compute and the video worker on free ports (infra/local/suite.py), and a
Prometheus scraping them every second with the chart's rules (a copy with every ``for:`` cut to
10 s). Then drives load: a saturated compute pool (more concurrent /compute calls than the pool
and its in-flight limit take, so tasks queue and the rest get 503), ``/demo/blocking`` (a
``time.sleep`` inside io's ``async def``), user reads and writes (io's DB pools), one video upload
(Celery). It checks that the saturation and blocked-loop alerts go pending and firing while the
load runs (printing how long each took), and that every dashboard query and every series an alert
expression selects returns data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.local import prometheus
from infra.local.suite import Suite, running_suite
from monitoring.make_dashboard import queries
from panorama.testing import free_port, running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PANORAMA_MONITORING_TEST") != "1", reason="PANORAMA_MONITORING_TEST=1 runs it"),
    pytest.mark.skipif(prometheus.binary() is None, reason="needs the prometheus binary (apt install prometheus)"),
    pytest.mark.timeout(600),
]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts/panorama/files/panorama-dashboard.json"
MUST_FIRE = ("PanoramaProcessPoolSaturated", "PanoramaEventLoopBlocked")
# Outcomes this run does not provoke (a video that fails or retries): their alerts' selectors are
# checked without that one matcher, i.e. the series exists and carries the label.
NOT_PROVOKED = ('state="FAILURE"', 'state="RETRY"')
SELECTOR = re.compile(r"\b((?:panorama_[a-z_]+|up)(?:\{[^}]*\})?)(?!\w)")
COMPUTE_N = 8_000_000  # ~0.5-1 s of pure-Python loop per task on this machine's cores


class Load:
    """Background request loops, bounded in time, against the suite on 127.0.0.1."""

    def __init__(self, suite: Suite, seconds: float) -> None:
        self.suite = suite
        self.stop_at = time.monotonic() + seconds
        self.statuses: dict[str, dict[int, int]] = {}
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()

    def _loop(self, name: str, send: Any) -> None:
        headers = {"X-API-Key": self.suite.api_key}
        with httpx.Client(base_url=self.suite.urls["gateway"], headers=headers, timeout=60) as client:
            while time.monotonic() < self.stop_at:
                try:
                    status = send(client).status_code
                except httpx.HTTPError:
                    status = 0
                with self.lock:
                    counts = self.statuses.setdefault(name, {})
                    counts[status] = counts.get(status, 0) + 1

    def start(self, name: str, send: Any, copies: int = 1) -> None:
        for _ in range(copies):
            thread = threading.Thread(target=self._loop, args=(name, send), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stop_at = 0
        for thread in self.threads:
            thread.join(90)


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body.get("status") == "success", (expr, body)
    return body["data"]["result"]


def make_clip(path: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15", "-t", "2",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def test_alerts_fire_and_every_panel_and_alert_has_series_in_a_real_prometheus(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    # compute refuses past 3 tasks in flight; the gateway's /demo budget is 1 s, so a 2 s demo call is a 504.
    extra = {"compute": {"PANORAMA_MAX_IN_FLIGHT": "3"}, "gateway": {"PANORAMA_TIMEOUT_DEMO": "1"}}
    with running_suite(tmp_path / "suite", database_url, redis_url, extra) as suite:
        rules = prometheus.shortened_rules(tmp_path / "rules.yaml", max_for=10)
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(prometheus.config(suite.metrics_targets(), [str(rules)], interval="1s")))
        prometheus.check_config(config_file)
        base = f"http://127.0.0.1:{free_port()}"
        cmd = prometheus.command(config_file, tmp_path / "tsdb", base.removeprefix("http://"))
        with running(cmd, {}, tmp_path / "prometheus.log", url=base, ready="/-/ready", timeout=60):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                up = prom_query(base, "up == 1")
                if len(up) == 4:
                    break
                time.sleep(0.5)
            assert {r["metric"]["service"] for r in prom_query(base, "up == 1")} == set(suite.urls)

            clip = make_clip(tmp_path / "clip.mp4")
            with httpx.Client(base_url=suite.urls["gateway"], headers={"X-API-Key": suite.api_key}) as client:
                with clip.open("rb") as f:
                    upload = client.post("/upload-video", files={"file": ("clip.mp4", f, "video/mp4")}, timeout=60)
                assert upload.status_code == 202, upload.text
                created = client.post("/users", json={"name": "Mon Itor", "email": "monitor@example.com"}, timeout=30)
                assert created.status_code == 201, created.text
                user_id = created.json()["id"]

            load = Load(suite, seconds=120)
            started = time.monotonic()
            load.start("compute", lambda c: c.post("/compute", json={"n": COMPUTE_N}), copies=8)
            load.start("blocking", lambda c: c.get("/demo/blocking", params={"delay": 0.3}))
            load.start("users", lambda c: c.get(f"/users/{user_id}"), copies=2)
            load.start("timeouts", lambda c: c.get("/demo/async", params={"delay": 2}))
            seen: dict[str, dict[str, float]] = {}
            try:
                while time.monotonic() - started < 110:
                    now = time.monotonic() - started
                    alerts = httpx.get(f"{base}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
                    for alert in alerts:
                        times = seen.setdefault(alert["labels"]["alertname"], {})
                        times.setdefault(alert["state"], round(now, 1))
                    if all("firing" in seen.get(name, {}) for name in MUST_FIRE) and now > 20:
                        break
                    time.sleep(0.5)
            finally:
                load.stop()
            print("\nalerts (s after the load started):", json.dumps(seen, sort_keys=True))
            print("load statuses:", json.dumps(load.statuses, sort_keys=True))
            if out := os.environ.get("PANORAMA_MONITORING_RESULT"):
                Path(out).write_text(json.dumps({"alerts": seen, "statuses": load.statuses}, indent=2))
            for name in MUST_FIRE:
                assert "firing" in seen.get(name, {}), (name, seen, load.statuses)
            assert "pending" in seen["PanoramaProcessPoolSaturated"], seen  # its for: held it back first
            assert 503 in load.statuses["compute"], load.statuses  # the pool refused the excess
            assert 504 in load.statuses["timeouts"], load.statuses

            # The video job finished (or failed): Celery's duration series exist either way.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not prom_query(base, "panorama_celery_task_duration_seconds_count"):
                time.sleep(1)

            empty = [
                (title, expr)
                for title, expr in queries(json.loads(DASHBOARD.read_text()))
                if not prom_query(base, expr)
            ]
            assert empty == [], f"dashboard panels without series: {empty}"

            rule_doc = yaml.safe_load(prometheus.RULES.read_text())
            missing = []
            for rule in (r for g in rule_doc["groups"] for r in g["rules"]):
                for selector in SELECTOR.findall(rule["expr"]):
                    for matcher in NOT_PROVOKED:
                        selector = selector.replace(matcher, matcher.split("=")[0] + '=~".+"')
                    if not prom_query(base, f"count({selector})"):
                        missing.append((rule["alert"], selector))
            assert missing == [], f"alert expressions selecting nothing: {missing}"
