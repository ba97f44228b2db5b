"""The load-test gate in ``make test``: short, low concurrency, real io + compute + gateway processes.

Zero errors, and the ordering the suite teaches holds: ``def`` routes queue behind the thread
limiter while ``async def`` routes do not. Long runs and timing targets live in ``make bench``.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import load, stack

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"
CONCURRENCY = 40
DELAY = 0.5
SYNC_POOL = 10


@pytest.fixture(scope="module")
def gateway(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway over io (Postgres, Redis) and compute, one worker each, on free ports."""
    workdir = tmp_path_factory.mktemp("gate")
    stack.migrate(database_url, workdir)
    io_env = {
        "PANORAMA_DATABASE_URL": database_url,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_SYNC_POOL_SIZE": str(SYNC_POOL),
    }
    with (
        stack.service("io", workdir, io_env) as io,
        stack.service("compute", workdir, {"PANORAMA_CPU_LIMIT": "1"}) as compute,
        stack.service("gateway", workdir, stack.gateway_env(io, compute, redis_url), ready="/readyz") as url,
    ):
        yield url


async def _bursts(gateway: str) -> tuple[dict[str, object], dict[str, object]]:
    async with load.session(total_timeout=60) as client:
        await load.burst(client, f"{gateway}/demo/async?delay=0", 4, stack.HEADERS)  # connections, first-call costs
        fast = await load.burst(client, f"{gateway}/demo/async?delay={DELAY}", CONCURRENCY, stack.HEADERS)
        slow = await load.burst(client, f"{gateway}/demo/sync?delay={DELAY}", CONCURRENCY, stack.HEADERS)
    return fast, slow


def test_sync_burst_queues_behind_the_thread_limiter_while_async_does_not(gateway: str) -> None:
    fast, slow = asyncio.run(_bursts(gateway))
    assert fast["errors"] == 0, fast
    assert slow["errors"] == 0, slow
    # 40 x 0.5 s on 10 threads is 4 waves: at least ~2 s whatever the machine does (a floor, so load
    # cannot make it pass falsely); awaited, one wave (~0.5 s), which a loaded machine stretches
    # (1.2 s seen in CI): it must still finish at least one wave earlier.
    assert slow["wall_s"] >= 1.8, (fast, slow)
    assert fast["wall_s"] <= slow["wall_s"] - 0.5, (fast, slow)


def test_locust_mixed_traffic_through_the_gateway_has_no_failures(gateway: str, tmp_path: Path) -> None:
    prefix = tmp_path / "locust"
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", gateway,
        "--api-key", stack.API_KEY, "-u", "8", "-r", "4", "-t", "12s", "--stop-timeout", "5",
        "--weight-read", "6", "--weight-write", "1", "--weight-cache", "3", "--weight-compute", "1",
        "--weight-upload", "0", "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    with (tmp_path / "locust_stats.csv").open() as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    total = rows.pop("Aggregated")
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(total["Failure Count"]) == 0, (tmp_path / "locust_failures.csv").read_text()
    # Every kind of request ran (the weights reached the user class) and nothing was an error.
    assert {"/users/{id}", "/users", "/cached/{key}", "/cached/{key} PUT", "/compute"} <= set(rows), rows.keys()
    assert int(total["Request Count"]) >= 50
