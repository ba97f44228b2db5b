"""Gateway settings: API keys, where the downstreams are, and the timeout budget of each route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from limits import parse
from pydantic import AnyHttpUrl, Field, field_validator

from panorama.core.queue import BrokerUrl
from panorama.core.settings import PanoramaSettings, require_secret
from panorama.core.sizing import DEFAULT_UPSTREAM_CONNECTIONS


class GatewaySettings(PanoramaSettings):
    # Required: no default, and a placeholder is refused.
    api_keys: str = Field(description="comma-separated keys accepted as X-API-Key or Bearer token")
    io_url: AnyHttpUrl = Field(default=AnyHttpUrl("http://127.0.0.1:8001"), description="where the gateway finds io")
    compute_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8002"), description="where the gateway finds compute"
    )
    redis_url: str | None = Field(
        default=None,
        description="Celery broker and results, shared rate-limit counters; unset: embedded queue, local counters",
    )
    storage_dir: Path = Field(
        default=Path(".panorama/storage"), description="shared directory for uploaded and transcoded videos"
    )
    broker_url: BrokerUrl = Field(
        default=None,
        description="Celery broker, amqp://user:pass@host:5672/vhost (RabbitMQ); unset: Redis or the embedded queue",
    )
    # One aiohttp connector per downstream per worker; beyond this many sockets requests queue.
    # Checked by the sizing plan (at most 10,000, and within the open-file limit).
    upstream_connections: int = Field(
        default=DEFAULT_UPSTREAM_CONNECTIONS,
        ge=1,
        description="sockets per downstream per worker (one aiohttp pool each; in the sizing plan)",
    )
    upstream_connect_timeout: float = Field(
        default=3.0, gt=0, description="seconds to open a connection to a downstream (503 when it runs out)"
    )
    # Per-route budgets (seconds): the gateway answers 504 when one runs out.
    timeout_default: float = Field(default=5.0, gt=0, description="budget (s) of the users and cached routes")
    timeout_demo: float = Field(default=15.0, gt=0, description="budget (s) of the /demo routes")
    timeout_compute: float = Field(default=30.0, gt=0, description="budget (s) of /compute and /ml-inference")
    timeout_proxy: float = Field(default=10.0, gt=0, description="budget (s) of /proxy")
    timeout_safe: float = Field(default=1.0, gt=0, description="budget (s) of /safe")
    # Per API key, in the `limits` notation ("100/second", "5000/minute"); "off" disables it.
    rate_limit: str = Field(
        default="100/second", description="per API key, e.g. 100/second or 5000/minute; off disables it"
    )
    # Counted per client address; over it every key, valid or not, gets 429: guessing keys costs a 429.
    auth_failure_limit: int = Field(
        default=20, ge=0, description="wrong API keys a client IP may send per minute before 429; 0 disables"
    )
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="largest upload accepted (413 beyond, checked while streaming)"
    )
    # A slow client must not hold a socket and a temp file for as long as it likes (408 beyond).
    upload_timeout: float = Field(default=600.0, gt=0, description="seconds the whole upload body may take")
    upload_min_rate: float = Field(
        default=32 * 1024, ge=0, description="bytes/s an upload must average after the grace period; 0 disables"
    )
    upload_rate_grace: float = Field(default=10.0, ge=0, description="seconds before the minimum upload rate applies")
    # Where the embedded (no Redis) Celery queue lives; must match the video worker's.
    state_dir: Path = Field(
        default=Path(".panorama"), description="local state: the embedded Celery queue (must match the worker)"
    )
    probe_timeout: float = Field(
        default=10.0, gt=0, description="seconds the container probe may take to vet an upload"
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_are_real(cls, value: str) -> str:
        keys = [k.strip() for k in value.split(",") if k.strip()]
        if not keys:
            raise ValueError("set at least one API key")
        for key in keys:
            require_secret("PANORAMA_API_KEYS", key)
            if len(key) < 16:
                raise ValueError("each API key must be at least 16 characters")
        return ",".join(keys)

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        if value.strip().lower() != "off":
            try:
                parse(value)
            except ValueError:
                raise ValueError('use the form "100/second", "5000/minute" or "off"') from None
        return value.strip()

    def sizing_options(self) -> dict[str, Any]:
        return {"upstream_connections": self.upstream_connections}

    @property
    def rate_limit_or_none(self) -> str | None:
        return None if self.rate_limit.lower() == "off" else self.rate_limit

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return tuple(self.api_keys.split(","))
