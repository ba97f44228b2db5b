"""The engines and session factory, sized by the core sizing plan.

Two engines per worker: the async one (asyncpg, or aiosqlite when no database is configured)
that every ``async def`` route uses, and a sync one (psycopg, or sqlite3) for the ``def`` routes
that run in the thread pool. The sync pool has exactly as many connections as the thread limiter
has tokens, so a thread never sits waiting for a connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool, Pool

from panorama.core.sizing import Plan
from panorama.io.settings import IoSettings


class PoolStatus(BaseModel):
    """One engine's connection pool, as SQLAlchemy's pool reports it."""

    pool_class: str
    size: int | None = None
    checked_in: int | None = None
    checked_out: int | None = None
    overflow: int | None = None
    max_overflow: int | None = None
    timeout_s: float | None = None
    recycle_s: int | None = None
    pre_ping: bool = False


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a file SQLite database (the embedded default lives in ``.panorama/``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


class DatabaseUnreachable(Exception):
    """No connection to the database could be opened: refused, unreachable, or timed out."""


def _name_connect_failures(engine: AsyncEngine) -> AsyncEngine:
    """Raise :class:`DatabaseUnreachable` when the driver cannot connect at all.

    asyncpg raises plain ``OSError``/``TimeoutError`` while it opens a connection, outside the
    DBAPI errors SQLAlchemy translates; naming it here, where it happens, lets io map exactly this
    to a 503 instead of every ``OSError`` anywhere in the service.
    """

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:  # ConnectionRefusedError, TimeoutError, a name that does not resolve...
            raise DatabaseUnreachable(f"{type(exc).__name__}: {exc}") from exc

    return engine


def make_engine(settings: IoSettings, plan: Plan) -> AsyncEngine:
    if not settings.is_postgres:
        return create_async_engine(settings.database_url, pool_pre_ping=True)
    return _name_connect_failures(
        create_async_engine(
            settings.database_url,
            pool_size=plan.db_pool_size,
            max_overflow=plan.db_max_overflow,
            pool_timeout=plan.pool_timeout,
            pool_recycle=settings.db_pool_recycle,
            # A restarted Postgres leaves dead sockets in the pool; the ping replaces them on checkout.
            pool_pre_ping=True,
            connect_args={
                # asyncpg waits 60 s for a connection by default: far longer than any request's budget.
                "timeout": settings.db_connect_timeout,
                "server_settings": {"statement_timeout": str(settings.db_statement_timeout_ms)},
            },
        )
    )


def sync_url(async_url: str) -> str:
    """The same database for a sync driver: asyncpg -> psycopg, aiosqlite -> sqlite3."""
    url = make_url(async_url)
    driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    return url.set(drivername=driver).render_as_string(hide_password=False)


def make_sync_engine(settings: IoSettings, plan: Plan) -> Engine:
    url = sync_url(settings.database_url)
    if not settings.is_postgres:
        return create_engine(url, pool_pre_ping=True, connect_args={"check_same_thread": False})
    return create_engine(
        url,
        pool_size=plan.sync_pool_size,
        max_overflow=0,
        pool_timeout=plan.pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(2, round(settings.db_connect_timeout)),  # libpq's minimum is 2 s
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


def make_diagnostics_engine(settings: IoSettings) -> AsyncEngine:
    """A pool-less engine for ``/debug/locks`` and the readiness check: both must answer exactly
    when the main pool is exhausted (requests queued for it are being served, not failing).

    Its short-lived connections come out of the reserved connections of the sizing plan.
    """
    engine = create_async_engine(
        settings.database_url,
        poolclass=NullPool,
        connect_args={"timeout": settings.db_connect_timeout} if settings.is_postgres else {},
    )
    return _name_connect_failures(engine) if settings.is_postgres else engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: a committed object is still readable after commit without a new
    # round trip (and without lazy I/O that an async session cannot do implicitly).
    return async_sessionmaker(engine, expire_on_commit=False)


def pool_status(pool: Pool) -> PoolStatus:
    status: dict[str, Any] = {"pool_class": type(pool).__name__, "pre_ping": bool(getattr(pool, "_pre_ping", False))}
    for key, method in (("size", "size"), ("checked_in", "checkedin"), ("checked_out", "checkedout")):
        if hasattr(pool, method):
            status[key] = getattr(pool, method)()
    if hasattr(pool, "overflow"):
        status["overflow"] = max(0, pool.overflow())
    if hasattr(pool, "_max_overflow"):
        status["max_overflow"] = pool._max_overflow
    if hasattr(pool, "timeout"):
        status["timeout_s"] = pool.timeout()
    status["recycle_s"] = getattr(pool, "_recycle", None)
    return PoolStatus(**status)
