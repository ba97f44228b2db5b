"""Video worker settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from panorama.core.settings import PanoramaSettings


class WorkerSettings(PanoramaSettings):
    redis_url: str | None = Field(default=None, description="broker and results; unset: embedded filesystem queue")
    storage_dir: Path = Path(".panorama/storage")
    state_dir: Path = Path(".panorama")
    celery_concurrency: int | None = Field(default=None, ge=1, description="overrides the CPU-derived concurrency")
