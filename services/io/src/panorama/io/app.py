"""The I/O service app: ``gunicorn ... 'panorama.io.app:create_app()'``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI
from sqlalchemy import text

from panorama.core.health import Check
from panorama.core.service import create_service_app
from panorama.io.db import make_engine, make_sessionmaker
from panorama.io.settings import IoSettings


def _checks(app: FastAPI) -> Mapping[str, Check]:
    async def database() -> None:
        async with app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return {"database": database}


def create_app(settings: IoSettings | None = None) -> FastAPI:
    """Build the I/O service; the engine and Redis client are created in the lifespan."""
    settings = settings or IoSettings.load()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings, app.state.plan)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    return create_service_app(service="io", settings=settings, lifespan=lifespan, readiness_checks=_checks)
