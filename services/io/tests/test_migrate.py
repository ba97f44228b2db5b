"""Migrations: the one-shot job brings SQLite and Postgres to head, and running it twice is harmless."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
from sqlalchemy import make_url


def test_one_shot_job_migrates_embedded_sqlite_in_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PANORAMA_DATABASE_URL"}
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "panorama.io.migrate"], cwd=tmp_path, env=env, check=True, timeout=60)
    with sqlite3.connect(tmp_path / ".panorama" / "panorama.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"users", "alembic_version"} <= tables
    assert version == ("0001",)


def test_one_shot_job_migrates_postgres(migrated_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PANORAMA_DATABASE_URL": migrated_url}
    subprocess.run([sys.executable, "-m", "panorama.io.migrate"], cwd=tmp_path, env=env, check=True, timeout=60)
    dsn = make_url(migrated_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
        unique = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'uq_users_email' AND contype = 'u'"
        ).fetchone()
        assert unique == (1,)
