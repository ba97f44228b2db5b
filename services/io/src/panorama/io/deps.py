"""Typed dependencies for the I/O service's routes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession

from panorama.core.contract import DeadlineHeader
from panorama.io.cache import Cache
from panorama.io.outbound import OutboundClient
from panorama.io.settings import IoSettings

log = logging.getLogger(__name__)


async def get_settings(request: Request) -> IoSettings:
    return request.app.state.settings


async def request_deadline(
    request: Request,
    timeout: DeadlineHeader = None,
) -> float:
    """When this request must have answered (``time.monotonic()``): the header or the setting, the smaller."""
    budget = request.app.state.settings.request_timeout
    return time.monotonic() + (budget if timeout is None else min(timeout, budget))


DeadlineDep = Annotated[float, Depends(request_deadline)]


async def get_session(request: Request, deadline: DeadlineDep) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (its connection back in the pool) when the request ends.

    It waits its turn for a connection first (:mod:`panorama.io.admission`), within the budget.
    """
    async with request.app.state.db_admission.slot(deadline):
        session: AsyncSession = request.app.state.sessionmaker()
        try:
            yield session
        finally:
            try:
                await session.close()
            except Exception as exc:  # noqa: BLE001
                # The connection died under us (Postgres restarting): the pool discards it either way,
                # and the request's own error (already mapped to 503) is what the caller must see.
                log.warning("closing a session on a broken connection failed: %s", type(exc).__name__)


async def get_cache(request: Request) -> Cache:
    return request.app.state.cache


async def get_outbound(request: Request) -> OutboundClient:
    return request.app.state.outbound


async def get_sync_engine(request: Request) -> Engine:
    return request.app.state.sync_engine


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[IoSettings, Depends(get_settings)]
CacheDep = Annotated[Cache, Depends(get_cache)]
OutboundDep = Annotated[OutboundClient, Depends(get_outbound)]
SyncEngineDep = Annotated[Engine, Depends(get_sync_engine)]
