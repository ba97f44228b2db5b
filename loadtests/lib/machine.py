"""What the figures were measured on: cores, memory, CPU model, load, and the versions used."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from panorama.core.cpu import affinity_cpus
from panorama.video_worker import tools

PACKAGES = (
    "fastapi",
    "uvicorn",
    "gunicorn",
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "redis",
    "celery",
    "aiohttp",
    "httpx",
    "anyio",
    "locust",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _ffmpeg() -> str:
    """The ffmpeg the worker would run (panorama.video_worker.tools), and where it came from if not the PATH."""
    tool, _ = tools.find("ffmpeg", os.environ)
    if tool is None:
        return "not installed"
    return tool.version if tool.source == "PATH" else f"{tool.version} ({tool.source})"


def _postgres(dsn: str) -> str:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return "unreachable"


def _redis_server() -> str:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    return next((p.removeprefix("v=") for p in out.split() if p.startswith("v=")), out.strip())


def load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


def describe(pg_dsn: str) -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["ffmpeg"] = _ffmpeg()
    versions["postgres"] = _postgres(pg_dsn)
    versions["redis-server"] = _redis_server()
    return {
        "machine": {
            "cpu_model": _cpu_model(),
            "cores_usable": affinity_cpus(),
            "cores_online": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "os": f"{platform.system()} {platform.release()}",
            "load_at_start": load(),
        },
        "versions": versions,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
