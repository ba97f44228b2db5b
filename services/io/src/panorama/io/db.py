"""The async engine and session factory, sized by the core sizing plan."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from panorama.core.sizing import Plan
from panorama.io.settings import IoSettings


def make_engine(settings: IoSettings, plan: Plan) -> AsyncEngine:
    if settings.database_url.startswith("sqlite"):
        return create_async_engine(settings.database_url)
    return create_async_engine(
        settings.database_url,
        pool_size=plan.db_pool_size,
        max_overflow=plan.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=True,
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
