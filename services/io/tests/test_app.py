"""io as it really runs: gunicorn with a uvicorn worker, on Postgres + Redis and on embedded SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from panorama.testing import free_port, gunicorn_command, running

APP = "panorama.io.app:create_app()"


def test_gunicorn_io_is_ready_on_postgres_and_redis(migrated_url: str, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"PANORAMA_DATABASE_URL": migrated_url, "PANORAMA_REDIS_URL": redis_url, "PANORAMA_LOG_JSON": "false"}
    url = f"http://127.0.0.1:{port}"
    with running(gunicorn_command(APP, port), env, tmp_path / "io.log", url=url):
        ready = httpx.get(f"{url}/readyz").json()
        assert set(ready["checks"]) == {"database", "redis"}
        created = httpx.post(f"{url}/users", json={"name": "G", "email": "gunicorn@example.org"})
        assert created.status_code == 201
        user_id = created.json()["id"]
        assert httpx.get(f"{url}/users/{user_id}").headers["x-cache"] == "miss"
        assert httpx.get(f"{url}/users/{user_id}").headers["x-cache"] == "hit"


def test_embedded_defaults_need_neither_postgres_nor_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PANORAMA_DATABASE_URL", "PANORAMA_REDIS_URL")}
    subprocess.run([sys.executable, "-m", "panorama.io.migrate"], cwd=tmp_path, env=env, check=True, timeout=60)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = gunicorn_command(APP, port)
    proc_env = {"PANORAMA_DATABASE_URL": "", "PANORAMA_REDIS_URL": "", "PANORAMA_LOG_JSON": "false"}
    # cwd matters: the embedded database lives in ./.panorama, where the migration put it.
    monkeypatch.chdir(tmp_path)
    with running(cmd, proc_env, tmp_path / "io.log", url=url):
        assert set(httpx.get(f"{url}/readyz").json()["checks"]) == {"database"}
        created = httpx.post(f"{url}/users", json={"name": "E", "email": "embedded@example.org"})
        assert created.status_code == 201
        # Same form as on Postgres: an ISO timestamp that carries its zone.
        assert created.json()["created_at"].endswith("Z")
        assert httpx.post(f"{url}/users", json={"name": "E", "email": "embedded@example.org"}).status_code == 409
        assert httpx.get(f"{url}/users").json()["total"] == 1
        assert httpx.get(f"{url}/users/{created.json()['id']}").headers["x-cache"] == "miss"
        assert httpx.put(f"{url}/cached/k", json={"value": [1]}).status_code == 200
        assert httpx.get(f"{url}/cached/k").json()["value"] == [1]
