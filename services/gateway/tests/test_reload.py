"""SIGHUP to io's gunicorn master under 50 concurrent readers through the gateway: none fails or stalls.

gunicorn's reload used to SIGTERM io's old workers as it forked the new ones, so for the seconds the
new ones spent starting nobody accepted (max latency 4.38 s against the gateway's 5 s budget). Now
the old workers are retired once the new ones serve (gunicorn_conf), and the gateway sends a read
again, once, on a keep-alive connection a retiring worker closed under it (upstream.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from panorama.gateway.app import create_app
from panorama.gateway.settings import GatewaySettings
from panorama.io import migrate
from panorama.testing import ServiceProcess, free_port, gunicorn_command, running

pytestmark = pytest.mark.slow

KEY = "reload-tests-key-0123456789"
READERS = 50
MAX_LATENCY = 1.0  # load-sensitive: the figure is printed with the load average


@pytest.fixture
def io(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[str, ServiceProcess]]:
    migrate.upgrade(database_url)
    port = free_port()
    env = {
        "PANORAMA_DATABASE_URL": database_url,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_LOG_JSON": "false",
        "PANORAMA_CPU_LIMIT": "2",
        # What is measured is the reload: a CPU-starved shared host must not turn reads into 503s.
        "PANORAMA_REDIS_SOCKET_TIMEOUT": "2",
    }
    url = f"http://127.0.0.1:{port}"
    cmd = gunicorn_command("panorama.io.app:create_app()", port, workers=2)
    with running(cmd, env, tmp_path / "io.log", url=url, timeout=90) as process:
        yield url, process


def worker_pids(master: int) -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


async def read_through_a_reload(io_url: str, master: int) -> dict[str, float]:
    settings = GatewaySettings(
        api_keys=KEY, io_url=io_url, compute_url=f"http://127.0.0.1:{free_port()}", log_json=False, cpu_limit=1.0,
        rate_limit="off",
    )  # fmt: skip
    app = create_app(settings)
    stop = asyncio.Event()
    latencies: list[float] = []
    failures: list[str] = []

    async def reader(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            response = await client.get("/cached/reload-probe")
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:120]}")
            latencies.append(time.perf_counter() - started)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers={"X-API-Key": KEY}, timeout=30
        ) as client:
            put = await client.put("/cached/reload-probe", json={"value": [1, 2, 3], "ttl_s": 600})
            assert put.status_code == 200
            tasks = [asyncio.create_task(reader(client)) for _ in range(READERS)]
            await asyncio.sleep(2)
            baseline = max(latencies)
            old = worker_pids(master)
            os.kill(master, signal.SIGHUP)
            deadline = time.monotonic() + 90
            while worker_pids(master) & old and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # the new workers start, then the old ones drain and exit
            await asyncio.sleep(1)
            stop.set()
            await asyncio.gather(*tasks)
    assert not worker_pids(master) & old, "the old workers were never retired"
    return {
        "requests": len(latencies), "failed": len(failures), "max_latency_s": round(max(latencies), 3),
        "max_latency_before_s": round(baseline, 3), "load_1m": round(os.getloadavg()[0], 2),
    } | ({"sample": failures[0]} if failures else {})  # type: ignore[return-value]  # fmt: skip


def test_a_reload_of_io_under_50_readers_fails_nothing_and_stalls_nothing(io: tuple[str, ServiceProcess]) -> None:
    url, process = io
    assert process.proc is not None
    figures = asyncio.run(read_through_a_reload(url, process.proc.pid))
    print(f"\nio reload under {READERS} readers through the gateway: {figures}")
    assert figures["failed"] == 0, figures
    # The target is 1 s (met on a quiet machine: 0.74 s). A CPU-starved shared host is slow before
    # the reload too, and that is not the reload's doing: the bound grows with the latency measured
    # just before it (3x: seen 2.1x under a loaded CI run). Without the retirement hook the stall
    # was 4.9 s against 0.4 s before, which this still fails.
    assert figures["max_latency_s"] < max(MAX_LATENCY, 3 * figures["max_latency_before_s"]), figures
