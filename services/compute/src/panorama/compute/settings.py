"""Compute service settings."""

from __future__ import annotations

from pydantic import Field

from panorama.core.settings import PanoramaSettings


class ComputeSettings(PanoramaSettings):
    max_n: int = Field(default=50_000_000, ge=1, description="largest n POST /compute accepts")
