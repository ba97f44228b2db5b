"""``/debug/pool`` and ``/debug/locks`` on real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import make_url

IoClient = Callable[..., Any]


async def test_pool_status_reports_the_planned_sizes(make_io: IoClient, migrated_url: str) -> None:
    settings = {"database_url": migrated_url, "db_pool_size": 3, "db_max_overflow": 2, "sync_pool_size": 4}
    async with make_io(**settings) as (client, _):
        report = (await client.get("/debug/pool")).json()
        assert report["async_pool"]["size"] == 3
        assert report["async_pool"]["max_overflow"] == 2
        assert report["async_pool"]["pre_ping"] is True
        assert report["sync_pool"]["size"] == 4
        assert report["sync_pool"]["max_overflow"] == 0
        assert report["async_pool"]["checked_out"] == 0
        assert report["async_admission"]["slots"] == 5  # pool_size + max_overflow: the pool never has a waiter
        loop = (await client.get("/debug/loop")).json()
        assert loop["thread_tokens"] == 4


async def test_lock_waits_name_the_blocking_session(make_io: IoClient, migrated_url: str) -> None:
    dsn = make_url(migrated_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with make_io(database_url=migrated_url) as (client, _):
        assert (await client.get("/debug/locks")).json() == {"supported": True, "waits": []}
        with psycopg.connect(dsn) as holder:
            holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            holder_pid = holder.info.backend_pid
            waiting = asyncio.create_task(client.get("/users"))
            waits: list[dict[str, Any]] = []
            for _ in range(100):
                waits = (await client.get("/debug/locks")).json()["waits"]
                if waits:
                    break
                await asyncio.sleep(0.02)
            assert waits
            assert waits[0]["blocked_by"] == [holder_pid]
            assert waits[0]["wait_event_type"] == "Lock"
            assert "users" in waits[0]["query"]
            holder.commit()
        assert (await waiting).status_code == 200


async def test_locks_on_sqlite_say_unsupported(make_io: IoClient, tmp_path: Any) -> None:
    async with make_io(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db") as (client, _):
        assert (await client.get("/debug/locks")).json() == {"supported": False, "waits": []}
