"""io's spans and pool metrics: SQL and Redis spans, connection-pool gauges and the wait for a connection.

Called once per worker from the lifespan, after the engines exist. Tracing is a no-op without an
OTLP endpoint (see :mod:`panorama.core.telemetry`); the metrics are always on.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool

from panorama.core.metrics import add_sampler, observe_db_pool_wait, record_db_pool
from panorama.core.telemetry import instrument_aiohttp_client, instrument_redis, instrument_sqlalchemy

_TIMED = "_panorama_wait_timed"


def time_pool_waits(pool: Pool, name: str) -> None:
    """Observe how long each ``pool.connect()`` takes into ``panorama_db_pool_wait_seconds``.

    SQLAlchemy has no event before a checkout, only after it, so the public ``connect`` of this
    pool instance is wrapped. The figure includes opening a new connection and the pre-ping: all of
    it is time a request waits before its first statement. Idempotent per pool instance.
    """
    if getattr(pool, _TIMED, False):
        return
    connect: Callable[[], Any] = pool.connect

    @functools.wraps(connect)
    def timed_connect() -> Any:
        start = time.perf_counter()
        try:
            return connect()
        finally:
            observe_db_pool_wait(name, time.perf_counter() - start)

    pool.connect = timed_connect  # type: ignore[method-assign]
    setattr(pool, _TIMED, True)


def _sample_pool(engine: Engine, name: str) -> None:
    pool = engine.pool
    # engine.dispose() swaps in a new pool: time that one too from the next sample on.
    time_pool_waits(pool, name)
    size = getattr(pool, "size", None)
    if size is None:  # NullPool, StaticPool (SQLite): nothing pooled to report
        return
    record_db_pool(name, size=size(), checked_out=pool.checkedout(), overflow=pool.overflow())


def wire_io_observability(app: FastAPI, engine: AsyncEngine, sync_engine: Engine, *others: AsyncEngine) -> None:
    """SQL spans on every engine, Redis and outbound HTTP spans, the pools' gauges and waits.

    Call it before the outbound aiohttp session is created: the instrumentor hooks its creation.
    """
    # One call with every engine: the SQLAlchemy instrumentor ignores a second one.
    instrument_sqlalchemy(engine, sync_engine, *others)
    instrument_redis()
    instrument_aiohttp_client()
    time_pool_waits(engine.sync_engine.pool, "async")
    time_pool_waits(sync_engine.pool, "sync")
    add_sampler(app, lambda: _sample_pool(engine.sync_engine, "async"))
    add_sampler(app, lambda: _sample_pool(sync_engine, "sync"))
