"""Typed dependencies for the gateway's routes.

They are ``async def`` although they await nothing: FastAPI runs a plain ``def`` dependency in the
thread pool, so each one would cost every request a thread hand-off and a token of the limiter
(measured: 1000 concurrent requests queued behind 10 tokens).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from panorama.gateway.settings import GatewaySettings
from panorama.gateway.upstream import Upstream


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


async def get_io(request: Request) -> Upstream:
    return request.app.state.io


async def get_compute(request: Request) -> Upstream:
    return request.app.state.compute


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
IoDep = Annotated[Upstream, Depends(get_io)]
ComputeDep = Annotated[Upstream, Depends(get_compute)]
