"""Gateway routes: the seed's three handler styles, served by io."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from panorama.core.contract import DemoResult
from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(prefix="/demo", tags=["demo"])

Delay = Annotated[float, Query(ge=0, le=10, description="seconds to wait")]


async def _relay(io: IoDep, settings: SettingsDep, style: str, delay: float) -> Response:
    upstream = await io.request("GET", f"/demo/{style}", params={"delay": delay}, timeout=settings.timeout_demo)
    return upstream.relay(DemoResult)


@router.get("/async", response_model=DemoResult)
async def demo_async(io: IoDep, settings: SettingsDep, delay: Delay = 1.0) -> Response:
    """io awaits a sleep: thousands of these share one event loop."""
    return await _relay(io, settings, "async", delay)


@router.get("/sync", response_model=DemoResult)
async def demo_sync(io: IoDep, settings: SettingsDep, delay: Delay = 1.0) -> Response:
    """io blocks a worker thread (psycopg ``pg_sleep``): concurrency capped by its thread tokens."""
    return await _relay(io, settings, "sync", delay)


@router.get("/blocking", response_model=DemoResult, responses={404: {"description": "anti-pattern demos are off"}})
async def demo_blocking(io: IoDep, settings: SettingsDep, delay: Delay = 1.0) -> Response:
    """io blocks its event loop (404 unless ``PANORAMA_DEMO_ANTIPATTERNS=true`` on io)."""
    return await _relay(io, settings, "blocking", delay)
