"""The whole suite as local processes on free ports, for tests that need it running (like make up).

gateway, io, compute (one gunicorn worker each) and the video worker (one child), against the
given Postgres and Redis. Yields a :class:`Suite` with every URL, the API key and internal token.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from panorama.testing import ServiceProcess, free_port, gunicorn_command, running

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Suite:
    urls: dict[str, str]  # gateway, io, compute, video-worker (its /metrics)
    api_key: str
    internal_token: str
    workdir: Path
    metrics_urls: dict[str, str] = field(default_factory=dict)  # where each /metrics is (the gateway's apart)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def metrics_targets(self) -> dict[str, str]:
        return {name: url.removeprefix("http://") for name, url in {**self.urls, **self.metrics_urls}.items()}


@contextlib.contextmanager
def running_suite(
    workdir: Path, database_url: str, redis_url: str, extra_env: Mapping[str, Mapping[str, str]] | None = None
) -> Iterator[Suite]:
    """``extra_env``: per-service additions, e.g. ``{"compute": {"PANORAMA_MAX_IN_FLIGHT": "2"}}``."""
    ports = {name: free_port() for name in ("gateway", "io", "compute", "video-worker")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    gateway_metrics_port = free_port()
    suite = Suite(urls, secrets.token_urlsafe(18), secrets.token_urlsafe(24), workdir)
    suite.metrics_urls = {"gateway": f"http://127.0.0.1:{gateway_metrics_port}"}
    env = {
        "PANORAMA_DATABASE_URL": database_url,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_API_KEYS": suite.api_key,
        "PANORAMA_INTERNAL_TOKEN": suite.internal_token,
        "PANORAMA_IO_URL": urls["io"],
        "PANORAMA_COMPUTE_URL": urls["compute"],
        "PANORAMA_STORAGE_DIR": str(workdir / "storage"),
        "PANORAMA_STATE_DIR": str(workdir / "state"),
        "PANORAMA_WORKER_METRICS_PORT": str(ports["video-worker"]),
        "PANORAMA_WORKER_METRICS_ADDR": "127.0.0.1",
        "PANORAMA_CPU_LIMIT": "1",
        "PANORAMA_RATE_LIMIT": "off",
        "PANORAMA_LOG_JSON": "false",
        "PANORAMA_DEMO_ANTIPATTERNS": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "PYTHONUNBUFFERED": "1",
    }
    # The gateway's /metrics is never on its public port: its gunicorn master serves it here.
    extra: dict[str, dict[str, str]] = {
        # Each /metrics adds up all the service's workers, as in make up and the chart.
        name: {"PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics" / name)}
        for name in ("gateway", "io", "compute")
    }
    extra["gateway"].update({"PANORAMA_METRICS_PORT": str(gateway_metrics_port), "PANORAMA_METRICS_ADDR": "127.0.0.1"})
    for name, more in (extra_env or {}).items():
        extra[name] = {**extra.get(name, {}), **more}
    migrated = subprocess.run(
        [sys.executable, "-m", "panorama.io.migrate"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"io migrations failed: {migrated.stdout}{migrated.stderr}")
    worker_cmd = [
        sys.executable, "-m", "celery", "-A", "panorama.video_worker.celery_app", "worker",
        "--loglevel", "INFO", "--concurrency", "1", "--hostname", f"video-{ports['video-worker']}@%h",
    ]  # fmt: skip
    with contextlib.ExitStack() as stack:
        for name in ("io", "compute", "gateway"):
            cmd = gunicorn_command(f"panorama.{name}.app:create_app()", ports[name])
            service = stack.enter_context(
                running(cmd, {**env, **extra.get(name, {})}, workdir / f"{name}.log", url=urls[name], timeout=90)
            )
            suite.processes[name] = service
        worker = stack.enter_context(
            running(
                worker_cmd,
                {**env, **extra.get("video-worker", {})},
                workdir / "video-worker.log",
                url=urls["video-worker"],
                ready="/metrics",
                timeout=90,
            )
        )
        suite.processes["video-worker"] = worker
        yield suite
