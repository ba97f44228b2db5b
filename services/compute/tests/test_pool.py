"""Backpressure, deadlines and dead children, against a real gunicorn compute with two children."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from panorama.compute.child import CHILD_TITLE

from .conftest import LONG_N, ComputeServer

pytestmark = pytest.mark.slow


async def post_compute(client: httpx.AsyncClient, n: int, timeout: float) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post("/compute", json={"n": n}, headers={"X-Request-Timeout": str(timeout)})
    return response, time.monotonic() - started


def comm(pid: int) -> str | None:
    """The process's name (what the child initializer sets), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None


async def wait_for(server: ComputeServer, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = server.pool()
        if predicate(report):
            return report
        assert time.monotonic() < deadline, f"pool never reached the expected state: {report}"
        await asyncio.sleep(0.02)


async def test_requests_past_capacity_get_503_with_retry_after_at_once(compute_server: ComputeServer) -> None:
    capacity = compute_server.wait_idle()["capacity"]
    async with httpx.AsyncClient(base_url=compute_server.url, timeout=30) as client:
        # Long tasks with a short-ish deadline: they fill the pool, then stop themselves.
        results = await asyncio.gather(*(post_compute(client, LONG_N, 2.0) for _ in range(capacity + 6)))
    busy = [(r, t) for r, t in results if r.status_code == 503]
    assert len(busy) >= 6
    for response, elapsed in busy:
        assert response.headers["retry-after"] == "1"
        assert "capacity" in response.json()["detail"]
        assert elapsed < 1.0, "a rejected request must not wait for the pool"
    assert {r.status_code for r, _ in results} <= {503, 504}
    assert compute_server.wait_idle()["rejected"] >= 6


async def test_deadline_gives_504_and_cancels_the_queued_task(compute_server: ComputeServer) -> None:
    before = compute_server.wait_idle()
    size = before["size"]
    async with httpx.AsyncClient(base_url=compute_server.url, timeout=30) as client:
        # Every child busy: the next task waits in the pool's own queue, never handed to the executor.
        blockers = [asyncio.create_task(post_compute(client, LONG_N, 3.0)) for _ in range(size)]
        await wait_for(compute_server, lambda r: r["busy"] == size)
        response, elapsed = await post_compute(client, 1000, 0.5)
        await asyncio.gather(*blockers)
    assert response.status_code == 504
    assert "cancelled unstarted" in response.json()["detail"]
    assert 0.4 < elapsed < 2.0
    after = compute_server.wait_idle()
    assert after["cancelled"] == before["cancelled"] + 1


async def test_running_task_past_its_deadline_frees_the_core(compute_server: ComputeServer) -> None:
    compute_server.wait_idle()
    async with httpx.AsyncClient(base_url=compute_server.url, timeout=30) as client:
        response, elapsed = await post_compute(client, LONG_N, 0.5)
    assert response.status_code == 504
    assert "stops itself" in response.json()["detail"]
    assert elapsed < 2.0
    # The full loop would take many seconds; the child gives up at its next deadline check.
    await wait_for(compute_server, lambda r: r["in_flight"] == 0, timeout=3.0)


async def test_sigkilled_child_is_replaced_and_its_request_gets_503(compute_server: ComputeServer) -> None:
    before = compute_server.wait_idle()
    old_pids = before["pids"]
    assert len(old_pids) == before["size"]
    victim = old_pids[0]
    assert comm(victim) == CHILD_TITLE
    async with httpx.AsyncClient(base_url=compute_server.url, timeout=30) as client:
        running = [asyncio.create_task(post_compute(client, LONG_N, 10.0)) for _ in range(before["size"])]
        await wait_for(compute_server, lambda r: r["busy"] == before["size"])
        os.kill(victim, signal.SIGKILL)
        results = await asyncio.gather(*running)
        for response, elapsed in results:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert "died" in response.json()["detail"]
            assert elapsed < 8.0, "the request must not wait for its deadline"
        after = compute_server.wait_idle()
        assert after["replacements"] == before["replacements"] + 1
        ok, _ = await post_compute(client, 100_000, 10.0)
        assert ok.json() == {"result": sum(range(100_000))}
    new_pids = compute_server.pool()["pids"]
    assert new_pids
    assert not set(new_pids) & set(old_pids)
    assert comm(victim) is None, "the forkserver reaps the killed child"


async def test_idle_child_killed_is_replaced_before_the_next_request(compute_server: ComputeServer) -> None:
    before = compute_server.wait_idle()
    os.kill(before["pids"][-1], signal.SIGKILL)
    # The executor notices the death on its own; readiness (or the next submit) replaces the pool.
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=compute_server.url, timeout=30) as client:
        assert (await client.get("/readyz")).status_code == 200
        response, _ = await post_compute(client, 5000, 10.0)
    assert response.json() == {"result": sum(range(5000))}
    assert compute_server.pool()["replacements"] == before["replacements"] + 1
