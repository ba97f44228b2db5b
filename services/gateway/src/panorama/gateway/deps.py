"""Typed dependencies for the gateway's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from panorama.gateway.settings import GatewaySettings
from panorama.gateway.upstream import Upstream


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def get_io(request: Request) -> Upstream:
    return request.app.state.io


def get_compute(request: Request) -> Upstream:
    return request.app.state.compute


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
IoDep = Annotated[Upstream, Depends(get_io)]
ComputeDep = Annotated[Upstream, Depends(get_compute)]
