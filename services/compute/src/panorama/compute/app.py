"""The compute service app: ``gunicorn ... 'panorama.compute.app:create_app()'``."""

from __future__ import annotations

from fastapi import FastAPI

from panorama.compute.settings import ComputeSettings
from panorama.core.service import create_service_app


def create_app(settings: ComputeSettings | None = None) -> FastAPI:
    """Build the compute service."""
    settings = settings or ComputeSettings.load()
    return create_service_app(service="compute", settings=settings)
