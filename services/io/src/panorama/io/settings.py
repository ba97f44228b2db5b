"""I/O service settings: the database, Redis, the proxy allow-list and the demo switch."""

from __future__ import annotations

from pydantic import Field

from panorama.core.settings import PanoramaSettings

EMBEDDED_DATABASE_URL = "sqlite+aiosqlite:///.panorama/panorama.db"


class IoSettings(PanoramaSettings):
    database_url: str = Field(default=EMBEDDED_DATABASE_URL, description="SQLAlchemy URL; unset: embedded SQLite")
    redis_url: str | None = Field(default=None, description="Redis for the cache; unset: in-process cache")
    demo_antipatterns: bool = False
    db_pool_timeout: float = Field(default=2.0, gt=0, description="seconds to wait for a pooled connection")
    db_pool_recycle: int = Field(default=1800, ge=-1)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    cache_ttl: int = Field(default=60, ge=1)
    proxy_allow_hosts: str = Field(default="", description="comma-separated hosts /proxy may call")
