"""The I/O service app: ``gunicorn ... 'panorama.io.app:create_app()'``.

Migrations are not run here (several workers would race): run ``python -m panorama.io.migrate``
once before the service starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI
from sqlalchemy import text

from panorama.core.bodylimit import BodyLimitMiddleware
from panorama.core.health import Check
from panorama.core.service import create_service_app
from panorama.io.admission import Admission
from panorama.io.cache import make_cache
from panorama.io.db import ensure_sqlite_dir, make_diagnostics_engine, make_engine, make_sessionmaker, make_sync_engine
from panorama.io.failures import install_db_error_handlers
from panorama.io.observability import wire_io_observability
from panorama.io.outbound import OutboundClient
from panorama.io.readthrough import ReadThrough
from panorama.io.routes import cached, debug, demo, proxy, sync_users, users
from panorama.io.settings import IoSettings


def _checks(app: FastAPI) -> Mapping[str, Check]:
    async def database() -> None:
        # Through the pool-less diagnostics engine, not the request pool: under a burst every pooled
        # connection is taken and requests queue for them (panorama.io.admission), which is serving,
        # not unready; a probe waiting behind them would fail and take the pod out of service.
        async with app.state.diagnostics_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    checks: dict[str, Check] = {"database": database}
    if app.state.settings.redis_url:
        checks["redis"] = app.state.cache.ping
    return checks


def create_app(settings: IoSettings | None = None) -> FastAPI:
    """Build the I/O service; engines, cache and outbound session are created in the lifespan."""
    settings = settings or IoSettings.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plan = app.state.plan
        ensure_sqlite_dir(settings.database_url)
        engine = make_engine(settings, plan)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        # FIFO turns for the async pool's connections, as many as it holds: the pool never has a waiter.
        app.state.db_admission = Admission(plan.db_pool_size + plan.db_max_overflow)
        # The same pool, for single-statement reads (the read-through loaders): no transaction.
        app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.sync_engine = make_sync_engine(settings, plan)
        app.state.diagnostics_engine = make_diagnostics_engine(settings)
        wire_io_observability(app, engine, app.state.sync_engine, app.state.diagnostics_engine)
        app.state.cache = make_cache(settings, plan)
        app.state.read_through = ReadThrough(app.state.cache, ttl=settings.cache_ttl, name="users")
        app.state.outbound = OutboundClient(settings)
        await app.state.outbound.start()
        try:
            yield
        finally:
            await app.state.outbound.close()
            await app.state.read_through.close()
            await app.state.cache.close()
            await app.state.diagnostics_engine.dispose()
            app.state.sync_engine.dispose()
            await engine.dispose()

    app = create_service_app(service="io", settings=settings, lifespan=lifespan, readiness_checks=_checks)
    install_db_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_bytes, max_depth=settings.max_json_depth)
    for router in (users.router, sync_users.router, cached.router, proxy.router, demo.router, debug.router):
        app.include_router(router)
    if settings.demo_antipatterns:
        app.include_router(demo.blocking_router)
    return app
