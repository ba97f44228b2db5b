"""The three handler styles and the sync read path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

IoClient = Callable[..., Any]


async def test_async_demo_overlaps_concurrent_requests(make_io: IoClient) -> None:
    async with make_io() as (client, _):
        start = time.perf_counter()
        responses = await asyncio.gather(*(client.get("/demo/async", params={"delay": 0.5}) for _ in range(20)))
        assert all(r.status_code == 200 for r in responses)
        assert responses[0].json()["style"] == "async"
        # Twenty half-second sleeps on one loop take about half a second, not ten.
        assert time.perf_counter() - start < 3


async def test_sync_demo_uses_pg_sleep_in_the_thread_pool(make_io: IoClient, migrated_url: str) -> None:
    async with make_io(database_url=migrated_url, sync_pool_size=2) as (client, app):
        assert app.state.sync_engine.pool.size() == 2
        response = await client.get("/demo/sync", params={"delay": 0.2})
        assert response.status_code == 200
        body = response.json()
        assert "pg_sleep" in body["detail"]
        assert body["elapsed_s"] >= 0.2


async def test_sync_demo_without_postgres_sleeps_in_a_thread(make_io: IoClient, tmp_path: Any) -> None:
    async with make_io(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db") as (client, _):
        body = (await client.get("/demo/sync", params={"delay": 0.1})).json()
        assert "time.sleep" in body["detail"]


async def test_delay_out_of_bounds_is_422(make_io: IoClient) -> None:
    async with make_io(demo_antipatterns=True) as (client, _):
        for style in ("async", "sync", "blocking"):
            for delay in (-1, 11, "soon"):
                response = await client.get(f"/demo/{style}", params={"delay": delay})
                assert response.status_code == 422
                assert [e["field"] for e in response.json()["errors"]] == ["query.delay"]


async def test_blocking_demo_is_404_unless_antipatterns_are_on(make_io: IoClient) -> None:
    async with make_io() as (client, _):
        assert (await client.get("/demo/blocking", params={"delay": 0})).status_code == 404
    async with make_io(demo_antipatterns=True) as (client, _):
        response = await client.get("/demo/blocking", params={"delay": 0.1})
        assert response.status_code == 200
        assert response.json()["style"] == "blocking"


async def test_sync_user_read_matches_async_read(
    make_io: IoClient, migrated_url: str, new_email: Callable[..., str]
) -> None:
    async with make_io(database_url=migrated_url) as (client, _):
        user = (await client.post("/users", json={"name": "S", "email": new_email()})).json()
        assert (await client.get(f"/sync/users/{user['id']}")).json() == user
        assert (await client.get("/sync/users/2000000000")).status_code == 404
