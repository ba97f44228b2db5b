"""Diagnostics: the engines' pool status and the lock waits Postgres reports."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from panorama.io.admission import AdmissionStatus
from panorama.io.db import PoolStatus, pool_status

router = APIRouter(prefix="/debug", tags=["debug"])

LOCK_WAITS = text(
    """
    SELECT a.pid, pg_blocking_pids(a.pid) AS blocked_by, a.wait_event_type, a.wait_event, a.state,
           a.query_start, EXTRACT(EPOCH FROM (clock_timestamp() - a.query_start))::float8 AS waiting_s,
           left(a.query, 300) AS query
    FROM pg_stat_activity a
    WHERE a.wait_event_type = 'Lock' AND a.datname = current_database()
    ORDER BY a.query_start
    """
)


class PoolReport(BaseModel):
    async_pool: PoolStatus
    sync_pool: PoolStatus
    # The FIFO turns in front of the async pool: requests waiting, refused (503) and the longest wait.
    async_admission: AdmissionStatus


class LockWait(BaseModel):
    pid: int
    blocked_by: list[int]
    wait_event_type: str | None
    wait_event: str | None
    state: str | None
    query_start: datetime | None
    waiting_s: float | None
    query: str | None


class LockReport(BaseModel):
    supported: bool
    waits: list[LockWait]


@router.get("/pool")
async def pool(request: Request) -> PoolReport:
    """Size, checked-out connections and overflow of the async and sync pools, and the async pool's queue."""
    state = request.app.state
    return PoolReport(
        async_pool=pool_status(state.engine.pool),
        sync_pool=pool_status(state.sync_engine.pool),
        async_admission=state.db_admission.status(),
    )


@router.get("/locks")
async def locks(request: Request) -> LockReport:
    """Sessions of this database waiting on a lock, and who blocks them (Postgres only)."""
    if not request.app.state.settings.is_postgres:
        return LockReport(supported=False, waits=[])
    # Its own pool-less engine: this has to answer precisely when the main pool is exhausted.
    async with request.app.state.diagnostics_engine.connect() as conn:
        rows = (await conn.execute(LOCK_WAITS)).mappings().all()
    return LockReport(supported=True, waits=[LockWait(**row) for row in rows])
