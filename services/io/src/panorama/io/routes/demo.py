"""The seed's three handler styles: await, ``def`` in the thread pool, and blocking the loop."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import text

from panorama.core.contract import DemoResult
from panorama.io.deps import SettingsDep, SyncEngineDep

router = APIRouter(prefix="/demo", tags=["demo"])
# Served only with PANORAMA_DEMO_ANTIPATTERNS=true; otherwise the route does not exist (404).
blocking_router = APIRouter(prefix="/demo", tags=["demo"])

MAX_DELAY = 10.0
Delay = Annotated[float, Query(ge=0, le=MAX_DELAY, description="seconds to wait")]


@router.get("/async")
async def demo_async(delay: Delay = 1.0) -> DemoResult:
    """Await a sleep: the loop serves every other request meanwhile."""
    start = time.perf_counter()
    await asyncio.sleep(delay)
    return DemoResult(style="async", delay_s=delay, elapsed_s=time.perf_counter() - start, detail="await asyncio.sleep")


@router.get("/sync")
def demo_sync(engine: SyncEngineDep, settings: SettingsDep, delay: Delay = 1.0) -> DemoResult:
    """A blocking wait in a worker thread: concurrency is capped by the thread tokens (= sync pool)."""
    start = time.perf_counter()
    if settings.is_postgres:
        with engine.begin() as conn:
            # The server-wide statement_timeout would cut a long demo sleep short; lift it for this one.
            timeout_ms = int((delay + 5) * 1000)
            conn.execute(text(f"SET LOCAL statement_timeout = {timeout_ms}"))
            conn.execute(text("SELECT pg_sleep(:delay)"), {"delay": delay})
        detail = "psycopg SELECT pg_sleep in the thread pool"
    else:
        time.sleep(delay)  # no Postgres (embedded SQLite): stand in for the driver's blocking wait
        detail = "time.sleep in the thread pool (no Postgres configured)"
    return DemoResult(style="sync", delay_s=delay, elapsed_s=time.perf_counter() - start, detail=detail)


@blocking_router.get("/blocking")
async def demo_blocking(delay: Delay = 1.0) -> DemoResult:
    """The anti-pattern: a blocking call inside ``async def`` freezes the whole worker's loop."""
    start = time.perf_counter()
    # Deliberate: this route exists to show that /healthz on the same worker waits `delay` seconds.
    time.sleep(delay)  # noqa: ASYNC251
    return DemoResult(
        style="blocking", delay_s=delay, elapsed_s=time.perf_counter() - start, detail="time.sleep inside async def"
    )
