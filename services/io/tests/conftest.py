"""Fixtures for io's tests: a migrated database, in-process apps, and servers a test may break.

The shared Postgres and Redis are never stopped: outage tests start their own redis-server or
Postgres cluster (initdb into a tmp dir) on a free port and stop that.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from panorama.core.testing import free_port
from panorama.io import migrate
from panorama.io.app import create_app
from panorama.io.settings import IoSettings


@pytest.fixture(scope="session")
def migrated_url(database_url: str) -> str:
    """The session database, migrated to head with the same code the one-shot job runs."""
    migrate.upgrade(database_url)
    return database_url


@contextlib.asynccontextmanager
async def io_client(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """io in-process (lifespan included) and an httpx client bound to it."""
    values: dict[str, Any] = {"log_json": False, "cpu_limit": 1.0, **overrides}
    app = create_app(IoSettings(**values))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://io", timeout=30) as client:
            yield client, app


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{time.time_ns()}@example.org"


IoClient = Callable[..., contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, FastAPI]]]


@pytest.fixture
def make_io() -> IoClient:
    """``async with make_io(**settings) as (client, app)``: io in-process with those settings."""
    return io_client


@pytest.fixture
def new_email() -> Callable[..., str]:
    """A factory of emails no other test uses."""
    return unique_email


class ThrowawayRedis:
    """A redis-server of this test's own on a free port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.kill()


class ThrowawayPostgres:
    """A Postgres cluster of this test's own (initdb + pg_ctl) on a free port in a tmp dir."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.data = root / "data"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root; run the server as the postgres user then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "30", "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.fail("initdb/pg_ctl are not installed")
    # Not pytest's tmp_path: that is private to root (0700), and the server may run as postgres;
    # a short path also keeps the socket's path under its 107-byte limit.
    root = Path(tempfile.mkdtemp(prefix="panorama-pg-"))
    root.chmod(0o755)
    server = ThrowawayPostgres(root / "cluster")
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
