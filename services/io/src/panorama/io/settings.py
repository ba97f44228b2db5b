"""I/O service settings: the database, Redis, the proxy allow-list and the demo switch."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from panorama.core.settings import PanoramaSettings
from panorama.core.sizing import DEFAULT_POOL_TIMEOUT, DEFAULT_REDIS_CONNECTIONS

EMBEDDED_DATABASE_URL = "sqlite+aiosqlite:///.panorama/panorama.db"


class IoSettings(PanoramaSettings):
    database_url: str = Field(default=EMBEDDED_DATABASE_URL, description="SQLAlchemy URL; unset: embedded SQLite")
    redis_url: str | None = Field(default=None, description="Redis for the cache; unset: in-process cache")
    demo_antipatterns: bool = Field(default=False, description="serve /demo/blocking (time.sleep inside async def)")
    db_pool_timeout: float = Field(
        default=DEFAULT_POOL_TIMEOUT,
        gt=0,
        description="seconds to wait for a pooled DB or Redis connection (a burst queues instead of failing)",
    )
    request_timeout: float = Field(
        default=5.0,
        gt=0,
        description="budget (s) of a request when X-Request-Timeout is absent, and its cap: the gateway's "
        "timeout_default; a request waits its turn for a DB connection until this less 0.5 s, then 503",
    )
    db_pool_recycle: int = Field(
        default=1800, ge=-1, description="seconds after which a pooled connection is replaced (-1: never)"
    )
    db_connect_timeout: float = Field(default=2.0, gt=0, description="seconds to open one database connection")
    db_statement_timeout_ms: int = Field(
        default=5000, ge=0, description="Postgres statement_timeout per connection (504 when it fires)"
    )
    cache_ttl: int = Field(default=60, ge=1, description="seconds a cached user or value lives")
    # Short: a dead Redis must cost a read about a second, then the DB answers. Not shorter: on a
    # busy machine a healthy Redis command can take 0.25 s, and reads then stampede the database.
    redis_socket_timeout: float = Field(
        default=1.0, gt=0, description="seconds a Redis command may take before reads fall back to the database"
    )
    redis_connections: int = Field(
        default=DEFAULT_REDIS_CONNECTIONS, ge=1, description="Redis connections per worker (in the sizing plan)"
    )
    memory_cache_entries: int = Field(default=10_000, ge=1, description="in-process cache size (no Redis)")
    proxy_allow_hosts: str = Field(default="", description="comma-separated hosts /proxy may call")
    proxy_timeout: float = Field(default=5.0, gt=0, description="seconds for one outbound /proxy call")
    proxy_connections: int = Field(default=100, ge=1, description="outbound HTTP connections per worker")
    proxy_max_bytes: int = Field(default=1024 * 1024, ge=1, description="largest body /proxy relays")
    proxy_max_redirects: int = Field(default=3, ge=0, description="redirects /proxy follows, each hop checked again")

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_means_embedded(cls, value: object) -> object:
        # `PANORAMA_DATABASE_URL=` (set but empty) means the same as unset, not an unparsable URL.
        return value if value not in (None, "") else EMBEDDED_DATABASE_URL

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return value if value not in ("",) else None

    def sizing_options(self) -> dict[str, Any]:
        return {"pool_timeout": self.db_pool_timeout, "redis_connections": self.redis_connections}

    @property
    def proxy_allow_list(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.proxy_allow_hosts.split(",") if h.strip())

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")
