"""The settings base every service extends: ``PANORAMA_*`` variables read by pydantic-settings.

A bad value stops start-up with a message that names the environment variable, not the Python
field, because the variable is what the operator has to fix.

In a checkout the same variables may also sit in a ``.env`` file at the repository root (see
``.env.example``); ``PANORAMA_ENV_FILE`` names another file. Real environment variables win over
the file. An image has no checkout, so nothing but its environment is read there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from panorama.core.cpu import CGROUP_ROOT
from panorama.core.cpu import cpu_limit as detect_cpu_limit
from panorama.core.sizing import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_RESERVED_CONNECTIONS,
    DEFAULT_SYNC_POOL_SIZE,
    Plan,
    plan,
)

ENV_PREFIX = "PANORAMA_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

# Values that mean "somebody forgot to set this": refused for every secret.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "change_me", "secret", "example", "xxx", "todo"})
# Never echo these variables' values into logs: they hold or may embed credentials.
SENSITIVE_WORDS = ("key", "secret", "password", "token", "url")


ENV_FILE_VARIABLE = "PANORAMA_ENV_FILE"
# services/core/src/panorama/core/settings.py -> the repository root, in a checkout (editable install).
CHECKOUT_ROOT = Path(__file__).resolve().parents[5]


def env_file() -> Path | None:
    """``PANORAMA_ENV_FILE``, else the checkout's ``.env``; None when installed outside a checkout."""
    chosen = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    if chosen:
        return Path(chosen)
    if (CHECKOUT_ROOT / "services" / "core" / "pyproject.toml").is_file():
        return CHECKOUT_ROOT / ".env"
    return None


class SettingsError(ValueError):
    """Settings that cannot start a service; the message names each variable to fix."""


class PanoramaSettings(BaseSettings):
    """Settings shared by every service. Building it reads the environment and nothing else."""

    # env_file is read at each construction (a missing file is no error); real variables win over it.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_file=env_file(), env_file_encoding="utf-8"
    )

    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(
        default=True, description="one JSON object per log line (false: plain text, as make up uses)"
    )
    access_log: bool = Field(
        default=True, description="one INFO line per request (uvicorn's access log); PANORAMA_LOG_LEVEL applies too"
    )
    cpu_limit: float | None = Field(default=None, gt=0, description="overrides the cgroup CPU limit")
    web_concurrency: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("WEB_CONCURRENCY"), description="gunicorn workers"
    )
    # The database's budget, so that every replica's pools together fit max_connections.
    db_max_connections: int = Field(
        default=100, ge=1, description="the database server's max_connections, for the connection budget"
    )
    db_reserved_connections: int = Field(
        default=DEFAULT_RESERVED_CONNECTIONS,
        ge=0,
        description="connections kept free for admins, migrations and monitoring",
    )
    replicas: int = Field(default=1, ge=1, description="most pods at once (the HPA maximum)")
    db_pool_size: int = Field(
        default=DEFAULT_POOL_SIZE, ge=1, description="async pool connections kept open per worker"
    )
    db_max_overflow: int = Field(
        default=DEFAULT_MAX_OVERFLOW, ge=0, description="extra async connections per worker under load"
    )
    sync_pool_size: int = Field(
        default=DEFAULT_SYNC_POOL_SIZE, ge=1, description="sync-driver pool per worker; also the thread-limiter tokens"
    )
    cgroup_root: Path = Field(default=CGROUP_ROOT, description="where cpu.max / cpu.cfs_quota_us are read")
    readiness_timeout: float = Field(default=2.0, gt=0, description="seconds per readiness check")
    internal_token: SecretStr | None = Field(
        default=None, description="shared token internal services require of callers (the gateway sends it)"
    )
    # Observability (panorama.core.blocking, the shared lifespan): the detector is on by default.
    blocking_threshold_ms: float = Field(default=100.0, ge=0, description="loop stall to report; 0 turns it off")
    asyncio_debug: bool = Field(default=False, description="asyncio debug mode: slow callbacks are logged")
    # panorama.core.service._collector: after start-up, the worker's heap is frozen out of the garbage
    # collector and the youngest generation collects after this many allocations (Python's default
    # is 700). docs/observability.md ("What it costs") says what it saves.
    gc_threshold: int = Field(
        default=10_000, ge=0, description="young-generation collection every N allocations, heap frozen (0: Python's)"
    )
    slow_callback_ms: float = Field(default=100.0, gt=0, description="asyncio debug's slow-callback threshold")
    # Served by the gunicorn master for all its workers (the gateway's only /metrics: never public).
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="port the gunicorn master serves /metrics on (0: none)"
    )
    metrics_addr: str = Field(default="0.0.0.0", description="address the master's /metrics listens on")
    # Checked on the raw bytes before any parser runs (panorama.core.bodylimit).
    max_json_bytes: int = Field(default=1024 * 1024, ge=1, description="largest JSON request body (413 above)")
    max_json_depth: int = Field(default=64, ge=1, description="deepest JSON nesting accepted (422 above)")

    @field_validator("internal_token")
    @classmethod
    def _token_is_real(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            require_secret("PANORAMA_INTERNAL_TOKEN", value.get_secret_value())
            if len(value.get_secret_value()) < 16:
                raise ValueError("PANORAMA_INTERNAL_TOKEN must be at least 16 characters")
        return value

    @classmethod
    def load(cls) -> Self:
        """Read the environment, turning validation errors into one :class:`SettingsError`."""
        try:
            # The file named now, not at import: PANORAMA_ENV_FILE may have been set since.
            return cls(_env_file=env_file())  # type: ignore[call-arg]
        except ValidationError as exc:
            raise SettingsError(describe_errors(cls, exc)) from None

    def effective_cpu_limit(self) -> float:
        return self.cpu_limit if self.cpu_limit is not None else detect_cpu_limit({}, self.cgroup_root)

    def sizing(self) -> Plan:
        """This pod's pool sizes (see :mod:`panorama.core.sizing`)."""
        return plan(
            self.effective_cpu_limit(),
            max_connections=self.db_max_connections,
            replicas=self.replicas,
            reserved_connections=self.db_reserved_connections,
            workers=self.web_concurrency,
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            sync_pool_size=self.sync_pool_size,
            database=self.uses_database,
            **self.sizing_options(),
        )

    def sizing_options(self) -> dict[str, Any]:
        """Service-specific inputs of the plan (io: pool waits and Redis; gateway: upstream sockets)."""
        return {}

    @property
    def uses_database(self) -> bool:
        """A service whose settings declare a ``database_url`` opens connections; others open none."""
        return "database_url" in type(self).model_fields


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` (its alias, or prefix + upper-cased name)."""
    info = settings_cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    prefix = settings_cls.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def describe_errors(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = field if field.isupper() else env_name(settings_cls, field)
        value = error.get("input")
        hidden = isinstance(value, dict) or any(word in name.lower() for word in SENSITIVE_WORDS)
        shown = "" if hidden else f" (got {value!r})"
        lines.append(f"{name}: {error['msg']}{shown}")
    return "invalid settings: " + "; ".join(lines)


def require_secret(name: str, value: str) -> str:
    """Refuse an empty or placeholder secret, naming the variable."""
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} is empty or a placeholder; set a real secret")
    return value
