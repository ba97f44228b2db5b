"""Typed dependencies for the compute routes: settings, the two pools, the request's deadline."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from panorama.compute.pool import ProcessPool, ThreadPool
from panorama.compute.settings import ComputeSettings
from panorama.core.contract import DeadlineHeader


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
    timeout: DeadlineHeader = None,
) -> float:
    """The absolute deadline (epoch seconds, comparable in pool children): header or setting, the smaller."""
    budget = settings.request_timeout if timeout is None else min(timeout, settings.request_timeout)
    return time.time() + budget


DeadlineDep = Annotated[float, Depends(request_deadline)]
