"""Typed dependencies for the compute routes: settings, the two pools, the request's deadline."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Request

from panorama.compute.pool import ProcessPool, ThreadPool
from panorama.compute.settings import ComputeSettings
from panorama.core.contract import DEADLINE_HEADER, DEADLINE_MAX_S


async def get_settings(request: Request) -> ComputeSettings:
    return request.app.state.settings


async def get_process_pool(request: Request) -> ProcessPool:
    return request.app.state.process_pool


async def get_thread_pool(request: Request) -> ThreadPool:
    return request.app.state.thread_pool


SettingsDep = Annotated[ComputeSettings, Depends(get_settings)]
ProcessPoolDep = Annotated[ProcessPool, Depends(get_process_pool)]
ThreadPoolDep = Annotated[ThreadPool, Depends(get_thread_pool)]


async def request_deadline(
    settings: SettingsDep,
    timeout: Annotated[
        float | None,
        Header(
            alias=DEADLINE_HEADER,
            gt=0,
            le=DEADLINE_MAX_S,
            description="seconds the caller will wait (the gateway's budget)",
        ),
    ] = None,
) -> float:
    """The absolute deadline (epoch seconds, comparable in pool children): header or setting, the smaller."""
    budget = settings.request_timeout if timeout is None else min(timeout, settings.request_timeout)
    return time.time() + budget


DeadlineDep = Annotated[float, Depends(request_deadline)]
