"""Rolling restarts under steady load lose no request: SIGTERM drains, then stops gracefully.

Each HTTP service runs as two gunicorn masters behind a tiny round robin of the test's own that,
like a Kubernetes Service, sends traffic only to backends whose ``/readyz`` answers 200 (polled
every 50 ms). SIGTERM goes to the master alone, as the kubelet sends it to PID 1: with
``PANORAMA_DRAIN_SECONDS`` the master flips ``/readyz`` to 503 while it still serves, then stops
gracefully, letting in-flight requests finish. The load generator must see zero failures.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from panorama.io import migrate
from panorama.testing import ServiceProcess, free_port, gunicorn_command, running

pytestmark = pytest.mark.slow

API_KEY = "shutdown-suite-key-0123456789"
DRAIN = 1.0
POLL = 0.05
APPS = {
    "gateway": "panorama.gateway.app:create_app()",
    "io": "panorama.io.app:create_app()",
    "compute": "panorama.compute.app:create_app()",
}


@dataclass
class Backend:
    name: str
    port: int
    process: ServiceProcess
    ready: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class RoundRobin:
    """Routes each request to the next backend whose last readiness probe answered 200."""

    backends: list[Backend]
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)

    def probe(self, client: httpx.Client) -> None:
        for backend in self.backends:
            try:
                backend.ready = client.get(backend.url + "/readyz").status_code == 200
            except httpx.HTTPError:
                backend.ready = False

    def _poll(self) -> None:
        with httpx.Client(timeout=1.0) as client:
            while not self._stop.is_set():
                self.probe(client)
                time.sleep(POLL)

    def pick(self) -> Backend | None:
        ready = [b for b in self.backends if b.ready]
        return ready[next(self._turn) % len(ready)] if ready else None

    def __enter__(self) -> RoundRobin:
        with httpx.Client(timeout=1.0) as client:
            self.probe(client)
        self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._poller.join(5)


@dataclass
class Load:
    """Clients sending ``send(client, base_url)`` through the round robin back to back; failures kept."""

    balancer: RoundRobin
    send: Callable[[httpx.Client, str], httpx.Response]
    threads: int = 6
    ok: int = 0
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=20.0) as client:
            while not self._stop.is_set():
                backend = self.balancer.pick()
                if backend is None:
                    outcome = "no ready backend"
                else:
                    try:
                        response = self.send(client, backend.url)
                        outcome = "" if response.status_code < 500 else f"{backend.name}: {response.status_code}"
                    except httpx.HTTPError as exc:
                        outcome = f"{backend.name}: {exc!r}"
                with self._lock:
                    if outcome:
                        self.failures.append(outcome)
                    else:
                        self.ok += 1

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(25)


def start_backend(name: str, service: str, env: dict[str, str], logs: Path, port: int | None = None) -> Backend:
    port = port or free_port()
    cmd = gunicorn_command(APPS[service], port)
    process = ServiceProcess(cmd, env, logs / f"{name}-{time.monotonic_ns()}.log", url=f"http://127.0.0.1:{port}")
    return Backend(name, port, process.start())


def terminate_master(backend: Backend, timeout: float = 30.0) -> float:
    """SIGTERM to the gunicorn master only (as the kubelet signals PID 1); seconds until it exited."""
    proc = backend.process.proc
    assert proc is not None
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout)
    return time.monotonic() - start


def rolling_restart(
    service: str, env: dict[str, str], logs: Path, send: Callable[[httpx.Client, str], httpx.Response]
) -> tuple[Load, list[float]]:
    env = {**env, "PANORAMA_DRAIN_SECONDS": str(DRAIN), "PANORAMA_LOG_JSON": "false", "PANORAMA_CPU_LIMIT": "1"}
    backends = [start_backend(f"{service}-{i}", service, env, logs) for i in (1, 2)]
    stop_times = []
    try:
        for backend in backends:
            backend.process.wait_ready()
        with RoundRobin(backends) as balancer, Load(balancer, send) as load:
            time.sleep(1.0)
            for i, backend in enumerate(backends):
                stop_times.append(terminate_master(backend))
                replacement = start_backend(backend.name, service, env, logs, port=backend.port)
                backends[i] = replacement
                balancer.backends[i] = replacement
                replacement.process.wait_ready()
                time.sleep(0.5)
            time.sleep(0.5)
    finally:
        for backend in backends:
            backend.process.stop()
    return load, stop_times


def assert_no_request_lost(load: Load, stop_times: list[float]) -> None:
    assert not load.failures, load.failures[:10]
    assert load.ok > 50, load.ok
    # The drain really happened before the graceful stop (the flip, not luck, kept traffic away).
    assert all(t >= DRAIN for t in stop_times), stop_times


def test_io_rolling_restart_loses_no_request(tmp_path: Path, database_url: str, redis_url: str) -> None:
    migrate.upgrade(database_url)
    env = {"PANORAMA_DATABASE_URL": database_url, "PANORAMA_REDIS_URL": redis_url}

    def send(client: httpx.Client, url: str) -> httpx.Response:
        # In flight for half a second: some are always running when SIGTERM lands.
        return client.get(url + "/demo/async", params={"delay": 0.5})

    assert_no_request_lost(*rolling_restart("io", env, tmp_path, send))


def test_compute_rolling_restart_loses_no_request(tmp_path: Path) -> None:
    def send(client: httpx.Client, url: str) -> httpx.Response:
        return client.post(url + "/compute", json={"n": 300_000})

    # Room for the whole load on one backend: compute's own 503 backpressure is not what is tested here.
    env = {"PANORAMA_MAX_IN_FLIGHT": "16"}
    assert_no_request_lost(*rolling_restart("compute", env, tmp_path, send))


@contextlib.contextmanager
def downstreams(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """One io and one compute for the gateways to call (the gateways' readiness checks both)."""
    migrate.upgrade(database_url)
    io_port, compute_port = free_port(), free_port()
    env = {"PANORAMA_DATABASE_URL": database_url, "PANORAMA_REDIS_URL": redis_url, "PANORAMA_CPU_LIMIT": "1"}
    with (
        running(gunicorn_command(APPS["io"], io_port), env, tmp_path / "io.log", url=f"http://127.0.0.1:{io_port}"),
        running(
            gunicorn_command(APPS["compute"], compute_port), {"PANORAMA_CPU_LIMIT": "1"}, tmp_path / "compute.log",
            url=f"http://127.0.0.1:{compute_port}",
        ),
    ):  # fmt: skip
        yield {
            "PANORAMA_IO_URL": f"http://127.0.0.1:{io_port}",
            "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{compute_port}",
        }


def test_gateway_rolling_restart_loses_no_request(tmp_path: Path, database_url: str, redis_url: str) -> None:
    with downstreams(tmp_path, database_url, redis_url) as urls:
        env = {
            **urls, "PANORAMA_API_KEYS": API_KEY, "PANORAMA_REDIS_URL": redis_url, "PANORAMA_RATE_LIMIT": "off",
            "PANORAMA_STORAGE_DIR": str(tmp_path / "storage"), "PANORAMA_STATE_DIR": str(tmp_path / "state"),
        }  # fmt: skip

        def send(client: httpx.Client, url: str) -> httpx.Response:
            return client.get(url + "/demo/async", params={"delay": 0.5}, headers={"X-API-Key": API_KEY})

        assert_no_request_lost(*rolling_restart("gateway", env, tmp_path, send))


def test_sigterm_flips_readiness_while_requests_are_still_served(tmp_path: Path) -> None:
    env = {"PANORAMA_DRAIN_SECONDS": "3", "PANORAMA_LOG_JSON": "false", "PANORAMA_CPU_LIMIT": "1"}
    backend = start_backend("compute", "compute", env, tmp_path)
    try:
        backend.process.wait_ready()
        assert backend.process.proc is not None
        os.kill(backend.process.proc.pid, signal.SIGTERM)
        with httpx.Client(base_url=backend.url, timeout=5) as client:
            deadline = time.monotonic() + 2
            while (ready := client.get("/readyz")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ready.status_code == 503
            assert ready.json()["checks"]["shutdown"]["error"] == "RuntimeError: draining before shutdown"
            # Still serving while it drains: a balancer that has not noticed yet loses nothing.
            assert client.post("/compute", json={"n": 10}).json()["result"] == 45
        assert backend.process.proc.wait(30) == 0
    finally:
        backend.process.stop()
