"""Throwaway servers and the suite's services on free ports, for benchmarks and the gate.

Never the shared servers' state: a fresh Postgres database (dropped afterwards) on the Postgres at
``PANORAMA_BENCH_PG_DSN`` and a redis-server of our own on a free port.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg

from panorama.testing import (
    ServiceProcess,
    ThrowawayRedis,
    free_port,
    gunicorn_command,
    running,
    throwaway_database,
)

PG_DSN = os.environ.get("PANORAMA_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "bench-key-0123456789abcdef"
HEADERS = {"X-API-Key": API_KEY, "X-Panorama-Synthetic": "bench", "baggage": "synthetic=true"}
APPS = {
    "io": "panorama.io.app:create_app()",
    "gateway": "panorama.gateway.app:create_app()",
    "compute": "panorama.compute.app:create_app()",
}
# What `make up` sets (plain-text logs); everything else is the default users run: INFO with the
# access log on, gunicorn's max_requests (1,000,000, half jitter), the planned pools.
BASE_ENV = {
    "PANORAMA_LOG_JSON": "false",
}


@contextlib.contextmanager
def postgres_database(dsn: str = PG_DSN) -> Iterator[str]:
    """A fresh database on ``dsn``'s server, dropped on exit; yields its asyncpg SQLAlchemy URL."""
    with throwaway_database(dsn, prefix="panorama_bench") as name:
        yield f"postgresql+asyncpg://{dsn.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"


def libpq_url(database_url: str) -> str:
    return "postgresql://" + database_url.split("://", 1)[1]


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A throwaway redis-server on a free port (never the shared one); yields its URL."""
    with ThrowawayRedis(folder) as server:
        yield server.url


def migrate(database_url: str, workdir: Path) -> None:
    env = {**os.environ, **BASE_ENV, "PANORAMA_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-m", "panorama.io.migrate"], cwd=workdir, env=env, check=True)


def seed_users(database_url: str, count: int) -> list[int]:
    """Insert ``count`` users in one statement; their ids."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO users (name, email) SELECT 'Bench ' || i, 'bench-' || i || '@example.org' "
            "FROM generate_series(1, %s) AS i RETURNING id",
            (count,),
        ).fetchall()
    return [row[0] for row in rows]


@contextlib.contextmanager
def service(
    name: str, workdir: Path, env: Mapping[str, str], *, workers: int = 1, tag: str = "", ready: str = "/readyz"
) -> Iterator[str]:
    """One gunicorn service (``io``, ``gateway`` or ``compute``) on a free port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = gunicorn_command(APPS[name], port, workers=workers)
    log = workdir / f"{name}{tag}-{port}.log"
    # As make up and the chart run it: /metrics adds up all the workers (their samples in files).
    metrics = {"PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{name}{tag}-{port}")}
    with running(cmd, {**BASE_ENV, **metrics, **env}, log, url=url, ready=ready, timeout=60):
        yield url


def gateway_env(io_url: str, compute_url: str, redis_url: str | None = None) -> dict[str, str]:
    """The gateway's settings; ``redis_url``: the run's Redis, which `make up` and the chart give the
    gateway too (its rate limiters' counters, the Celery broker)."""
    return {
        **({"PANORAMA_REDIS_URL": redis_url} if redis_url else {}),
        "PANORAMA_API_KEYS": API_KEY,
        "PANORAMA_IO_URL": io_url,
        "PANORAMA_COMPUTE_URL": compute_url,
        "PANORAMA_TIMEOUT_DEMO": "60",
        # One key sends every request: the per-key limit would measure itself, not the gateway.
        "PANORAMA_RATE_LIMIT": "off",
    }


__all__ = [
    "API_KEY",
    "HEADERS",
    "ServiceProcess",
    "free_port",
    "gateway_env",
    "migrate",
    "postgres_database",
    "redis_server",
    "seed_users",
    "service",
]
