"""Typed dependencies for the I/O service's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from panorama.io.cache import Cache
from panorama.io.outbound import OutboundClient
from panorama.io.settings import IoSettings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (its connection back in the pool) when the request ends."""
    async with request.app.state.sessionmaker() as session:
        yield session


def get_settings(request: Request) -> IoSettings:
    return request.app.state.settings


def get_cache(request: Request) -> Cache:
    return request.app.state.cache


def get_outbound(request: Request) -> OutboundClient:
    return request.app.state.outbound


def get_sync_engine(request: Request) -> Engine:
    return request.app.state.sync_engine


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[IoSettings, Depends(get_settings)]
CacheDep = Annotated[Cache, Depends(get_cache)]
OutboundDep = Annotated[OutboundClient, Depends(get_outbound)]
SyncEngineDep = Annotated[Engine, Depends(get_sync_engine)]
