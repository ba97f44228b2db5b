"""Faults under load through the real stack: gateway (gunicorn) -> io (gunicorn) -> Postgres and Redis.

Every server a test breaks is its own (initdb + pg_ctl, redis-server) on a free port of 127.0.0.1;
the shared Postgres and Redis are never touched. Each test bounds its own run time.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from panorama.io import migrate
from panorama.testing import (
    ServiceProcess,
    ThrowawayPostgres,
    ThrowawayRedis,
    free_port,
    gunicorn_command,
    running,
)
from panorama.testing import make_clip as clip
from panorama.testing import wait_until as until

pytestmark = pytest.mark.slow

API_KEY = "faults-suite-key-0123456789"
HEADERS = {"X-API-Key": API_KEY}
# The gateway's per-route budget in these tests; no request may take longer than this (+ slack).
BUDGET = 3.0


@dataclass
class Outcome:
    started: float
    elapsed: float
    status: int | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class SteadyLoad:
    """``threads`` clients each sending ``send(client)`` back to back until stopped; every outcome kept."""

    send: Callable[[httpx.Client], httpx.Response]
    threads: int = 4
    timeout: float = 15.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    status, error = self.send(client).status_code, None
                except httpx.HTTPError as exc:
                    status, error = None, repr(exc)
                with self._lock:
                    self.outcomes.append(Outcome(start, time.monotonic() - start, status, error))

    def since(self, moment: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.started >= moment]

    def __enter__(self) -> SteadyLoad:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)


# A stack still starting refuses calls: that is "not yet", not a failure.
wait_until = functools.partial(until, ignore=(httpx.HTTPError,))


def established_to(port: int) -> int:
    """Open TCP connections on this machine whose far end is 127.0.0.1:``port`` (client side only)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


make_clip = functools.partial(clip, seconds=1.0, size="160x120", rate=15)


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres().init()
    try:
        server.start()
        yield server
    finally:
        server.remove()


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    gateway: str
    io: str
    io_port: int
    io_process: ServiceProcess
    storage: Path
    io_cmd: list[str]
    io_env: dict[str, str]
    logs: Path

    def client(self, timeout: float = BUDGET + 5) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, headers=HEADERS, timeout=timeout)

    def restart_io(self) -> None:
        self.io_process = ServiceProcess(self.io_cmd, self.io_env, self.logs / "io-2.log", url=self.io).start()
        self.io_process.wait_ready("/healthz")


@contextlib.contextmanager
def stack(tmp: Path, database_url: str, redis_url: str | None, **gateway_env: str) -> Iterator[Stack]:
    """io and the gateway as real gunicorn processes (one worker each), the gateway's budgets short."""
    io_port, gw_port = free_port(), free_port()
    io_url = f"http://127.0.0.1:{io_port}"
    common = {
        "PANORAMA_LOG_JSON": "false",
        "PANORAMA_CPU_LIMIT": "1",
        "PANORAMA_INTERNAL_TOKEN": "faults-internal-0123456789",
    }
    io_env = {
        **common, "PANORAMA_DATABASE_URL": database_url, "PANORAMA_DB_CONNECT_TIMEOUT": "1",
        "PANORAMA_DB_POOL_TIMEOUT": "1", "PANORAMA_REDIS_URL": redis_url or "",
    }  # fmt: skip
    gw_env = {
        **common, "PANORAMA_API_KEYS": API_KEY, "PANORAMA_IO_URL": io_url,
        "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{free_port()}", "PANORAMA_REDIS_URL": redis_url or "",
        "PANORAMA_STORAGE_DIR": str(tmp / "storage"), "PANORAMA_STATE_DIR": str(tmp / "state"),
        "PANORAMA_TIMEOUT_DEFAULT": str(BUDGET), "PANORAMA_TIMEOUT_DEMO": str(BUDGET), "PANORAMA_RATE_LIMIT": "off",
        **gateway_env,
    }  # fmt: skip
    io_cmd = gunicorn_command("panorama.io.app:create_app()", io_port)
    gw_cmd = gunicorn_command("panorama.gateway.app:create_app()", gw_port)
    with (
        running(io_cmd, io_env, tmp / "io.log", url=io_url, ready="/healthz") as io,
        running(gw_cmd, gw_env, tmp / "gateway.log", url=f"http://127.0.0.1:{gw_port}", ready="/healthz"),
    ):
        built = Stack(f"http://127.0.0.1:{gw_port}", io_url, io_port, io, tmp / "storage", io_cmd, io_env, tmp)
        try:
            yield built
        finally:
            built.io_process.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as server:
        migrate.upgrade(server.url)
        yield server


def new_user(client: httpx.Client) -> dict:
    response = client.post("/users", json={"name": "F", "email": f"f-{time.time_ns()}@example.org"})
    assert response.status_code == 201, response.text
    return response.json()


def test_postgres_restart_under_load_is_503_then_recovers_without_restarting_io(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    with stack(tmp_path, postgres.url, None) as s:
        with s.client() as client:
            new_user(client)
        with SteadyLoad(lambda c: c.get(f"{s.gateway}/users", params={"limit": 5}, headers=HEADERS)) as load:
            time.sleep(1.0)
            postgres.stop()
            down_at = time.monotonic()
            time.sleep(2.0)
            starting_at = time.monotonic()
            postgres.start()
            up_at = time.monotonic()
            with s.client() as client:
                recovered = wait_until(lambda: client.get("/users").status_code == 200, 15, "recovery")
            time.sleep(1.0)
        # Recovered in place: the io master started by the fixture is still the one serving.
        assert s.io_process.proc is not None
        assert s.io_process.proc.poll() is None
        steady = load.since(up_at + recovered)
        during = [o for o in load.outcomes if down_at + 0.2 < o.started < starting_at]
        statuses = {o.status for o in load.outcomes}
    assert statuses <= {200, 503}, [o for o in load.outcomes if o.status not in (200, 503)][:5]
    assert during, "no request fell in the outage"
    assert all(o.status == 503 for o in during), {o.status for o in during}
    assert max(o.elapsed for o in load.outcomes) < BUDGET + 1, "a request outlived the gateway's budget"
    assert steady
    assert all(o.status == 200 for o in steady)


def test_redis_stopped_reads_come_from_the_database_and_uploads_are_refused_leaving_nothing(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    with ThrowawayRedis(tmp_path) as cache, stack(tmp_path, postgres.url, cache.url) as s, s.client() as client:
        user = new_user(client)
        assert client.get(f"/users/{user['id']}").status_code == 200
        assert client.get(f"/users/{user['id']}").headers["x-cache"] == "hit"
        before = files_under(s.storage)

        cache.kill()
        start = time.monotonic()
        read = client.get(f"/users/{user['id']}")
        assert read.status_code == 200, read.text
        assert read.json() == user
        assert read.headers["x-cache"] == "bypass"
        assert time.monotonic() - start < BUDGET

        start = time.monotonic()
        with clip.open("rb") as body:
            upload = client.post("/upload-video", files={"file": ("clip.mp4", body, "video/mp4")})
        assert upload.status_code == 503, upload.text
        assert upload.headers["content-type"] == "application/problem+json"
        assert time.monotonic() - start < 15
        # The refusal must come from the publish itself (not a limiter or probe in front of it): by
        # then the upload has been moved to uploads/, and only the clean-up after the failed
        # publish (jobs.py: source.unlink) leaves nothing behind.
        assert upload.json()["detail"] == "the job queue is unavailable (enqueue: OperationalError)"
        assert upload.headers["retry-after"] == "2"
        assert files_under(s.storage) == before


def test_killed_io_is_503_at_the_gateway_then_served_again_when_it_returns(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    with stack(tmp_path, postgres.url, None) as s, s.client() as client:
        user = new_user(client)
        s.io_process.stop(signal.SIGKILL)
        for _ in range(5):
            start = time.monotonic()
            down = client.get(f"/users/{user['id']}")
            assert down.status_code == 503, down.text
            assert down.headers["retry-after"] == "1"
            assert down.json()["title"] == "Upstream unavailable"
            assert time.monotonic() - start < 2
        assert client.get("/readyz").status_code == 503

        s.restart_io()
        # The gateway was not restarted: its pool drops the dead connections and opens new ones.
        wait_until(lambda: client.get(f"/users/{user['id']}").status_code == 200, 10, "recovery through the gateway")
        assert client.get(f"/users/{user['id']}").json() == user


def test_slow_io_is_504_at_the_budget_without_piling_up_connections_or_threads(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    connections = 4
    with stack(tmp_path, postgres.url, None, PANORAMA_UPSTREAM_CONNECTIONS=str(connections)) as s:
        with httpx.Client(base_url=s.io, timeout=5) as io:
            tokens = io.get("/debug/loop", headers={"x-panorama-internal-token": s.io_env["PANORAMA_INTERNAL_TOKEN"]})
            thread_tokens = tokens.json()["thread_tokens"]
        peak = {"connections": 0, "threads": 0}
        stop = threading.Event()

        def watch() -> None:
            with httpx.Client(base_url=s.io, timeout=5, headers={"connection": "close"}) as io:
                while not stop.is_set():
                    peak["connections"] = max(peak["connections"], established_to(s.io_port))
                    loop = io.get(
                        "/debug/loop", headers={"x-panorama-internal-token": s.io_env["PANORAMA_INTERNAL_TOKEN"]}
                    )
                    peak["threads"] = max(peak["threads"], loop.json()["threads_borrowed"])
                    time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with SteadyLoad(
            lambda c: c.get(f"{s.gateway}/demo/sync", params={"delay": BUDGET + 1.5}, headers=HEADERS), threads=12
        ) as load:
            time.sleep(BUDGET + 2)
        stop.set()
        watcher.join(5)
        slow = load.outcomes
        with s.client() as client:
            # Once the slow calls are abandoned, fast ones are served again.
            fast = client.get("/demo/async", params={"delay": 0})
    assert {o.status for o in slow} == {504}, {o.status for o in slow}
    assert all(BUDGET - 0.2 < o.elapsed < BUDGET + 1 for o in slow), sorted(o.elapsed for o in slow)[-3:]
    # No pile-up: the gateway's sockets to io stay bounded by its pool. A connection abandoned at the
    # budget leaves the pool at once but its socket closes on a later loop turn, so a whole pool timing
    # out together can show pool + pool sockets for a moment (seen in CI: 8 for a pool of 4). Without
    # the connector's limit every abandoned call keeps its socket (12 here, one per load thread).
    assert 0 < peak["connections"] <= 2 * connections, peak
    # io borrows no more threads than it has tokens.
    assert 0 < peak["threads"] <= thread_tokens, (peak, thread_tokens)
    assert fast.status_code == 200, fast.text
