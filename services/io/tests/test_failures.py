"""Failure mapping on real servers: pool exhaustion and a Postgres outage answer 503, then recover."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy import make_url

from panorama.core.contract import DEADLINE_HEADER
from panorama.io import migrate
from panorama.io.admission import ANSWER_RESERVE
from panorama.testing import free_port

IoClient = Callable[..., Any]


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def users_locked(url: str) -> Iterator[psycopg.Connection]:
    """A transaction holding ``users`` locked (every read of it waits); commit or roll back to release."""
    with psycopg.connect(_psycopg_dsn(url)) as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        yield holder


async def stuck_on_the_lock(client: Any) -> asyncio.Task[Any]:
    """A ``GET /users`` in flight, holding the pool's one connection while it waits on the lock."""
    stuck = asyncio.create_task(client.get("/users"))
    for _ in range(100):
        if (await client.get("/debug/pool")).json()["async_pool"]["checked_out"] == 1:
            break
        await asyncio.sleep(0.02)
    return stuck


async def test_pool_exhaustion_returns_503_within_the_budget_and_pool_recovers(
    make_io: IoClient, migrated_url: str
) -> None:
    budget = 1.5  # X-Request-Timeout: the request waits its turn until this less the answer's reserve
    settings = {"database_url": migrated_url, "db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 1.0}
    async with make_io(**settings) as (client, _):
        assert (await client.get("/users")).status_code == 200
        # Hold a lock that makes the pool's only connection wait inside a query.
        with users_locked(migrated_url) as holder:
            stuck = await stuck_on_the_lock(client)
            start = time.perf_counter()
            refused = await client.get("/users", headers={DEADLINE_HEADER: str(budget)})
            waited = time.perf_counter() - start
            assert refused.status_code == 503
            assert refused.json()["title"] == "Database pool exhausted"
            assert int(refused.headers["retry-after"]) >= 1
            assert (budget - ANSWER_RESERVE) * 0.8 <= waited < budget + 1.0
            holder.commit()
        assert (await stuck).status_code == 200
        after = await client.get("/users")
        assert after.status_code == 200
        report = (await client.get("/debug/pool")).json()
        assert report["async_pool"]["checked_out"] == 0
        assert report["async_admission"]["refused"] == 1


async def test_readiness_stays_ok_while_every_pooled_connection_is_busy(make_io: IoClient, migrated_url: str) -> None:
    settings = {"database_url": migrated_url, "db_pool_size": 1, "db_max_overflow": 0}
    async with make_io(**settings) as (client, _):
        with users_locked(migrated_url) as holder:
            stuck = await stuck_on_the_lock(client)
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            holder.commit()
        assert (await stuck).status_code == 200


async def test_a_burst_of_misses_larger_than_the_pool_queues_and_succeeds_within_the_budget(
    make_io: IoClient, migrated_url: str, new_email: Callable[..., str]
) -> None:
    """60 reads of distinct users through 2 connections, all held up 1.2 s by a lock: every one is a
    200 within the budget, though SQLAlchemy's own pool timeout (0.5 s here) is far shorter."""
    settings = {"database_url": migrated_url, "db_pool_size": 1, "db_max_overflow": 1, "db_pool_timeout": 0.5}
    burst, budget = 60, 4.0
    async with make_io(**settings) as (client, _):
        ids = [(await client.post("/users", json={"name": "B", "email": new_email("burst")})).json()["id"]
               for _ in range(burst)]  # fmt: skip
        with users_locked(migrated_url) as holder:
            start = time.perf_counter()
            reads = [
                asyncio.create_task(client.get(f"/users/{i}", headers={DEADLINE_HEADER: str(budget)})) for i in ids
            ]
            await asyncio.sleep(1.2)
            pool = (await client.get("/debug/pool")).json()
            assert pool["async_pool"]["checked_out"] == 2
            assert pool["async_admission"]["waiting"] == burst - 2
            holder.commit()
        answers = await asyncio.gather(*reads)
        took = time.perf_counter() - start
    assert [a.status_code for a in answers] == [200] * burst
    assert {a.headers["x-cache"] for a in answers} == {"miss"}
    assert took < budget


async def test_a_budget_that_cannot_be_met_is_a_prompt_503_for_the_queued_reads(
    make_io: IoClient, migrated_url: str, new_email: Callable[..., str]
) -> None:
    """The two admitted reads wait on the lock until statement_timeout (504); the queued ones are
    refused at their budget less the reserve (503 with Retry-After), none hangs."""
    settings = {
        "database_url": migrated_url,
        "db_pool_size": 1,
        "db_max_overflow": 1,
        "db_statement_timeout_ms": 3000,
    }
    burst, budget = 12, 1.5
    async with make_io(**settings) as (client, _):
        ids = [(await client.post("/users", json={"name": "B", "email": new_email("late")})).json()["id"]
               for _ in range(burst)]  # fmt: skip
        with users_locked(migrated_url) as holder:

            async def read(user_id: int) -> tuple[int, float, str | None]:
                start = time.perf_counter()
                answer = await client.get(f"/users/{user_id}", headers={DEADLINE_HEADER: str(budget)})
                return answer.status_code, time.perf_counter() - start, answer.headers.get("retry-after")

            results = await asyncio.gather(*(read(i) for i in ids))
            holder.rollback()
    refused = [r for r in results if r[0] == 503]
    assert len(refused) == burst - 2
    assert all(budget - ANSWER_RESERVE - 0.2 <= took < budget + 0.5 and after for _, took, after in refused)
    assert sorted(r[0] for r in results if r[0] != 503) == [504, 504]


async def test_postgres_outage_is_503_and_recovers_without_restart(make_io: IoClient, throwaway_postgres: Any) -> None:
    await asyncio.to_thread(migrate.upgrade, throwaway_postgres.url)
    async with make_io(database_url=throwaway_postgres.url, db_connect_timeout=1.0) as (client, _):
        created = await client.post("/users", json={"name": "Pg", "email": "pg@example.org"})
        assert created.status_code == 201
        assert (await client.get("/users")).status_code == 200

        await asyncio.to_thread(throwaway_postgres.stop)
        start = time.perf_counter()
        down = await client.get("/users")
        assert down.status_code == 503
        assert down.json()["title"] == "Database unavailable"
        assert "retry-after" in down.headers
        assert time.perf_counter() - start < 3
        assert (await client.get("/sync/users/1")).status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False

        await asyncio.to_thread(throwaway_postgres.start)
        # Same app, same engine: pre-ping replaces the dead connections on checkout.
        again = await client.get("/users")
        assert again.status_code == 200
        assert again.json()["total"] == 1
        assert (await client.get("/sync/users/1")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_a_database_nobody_listens_for_is_503_unreachable_and_named(make_io: IoClient) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres"
    async with make_io(database_url=url, db_connect_timeout=1.0) as (client, _):
        down = await client.get("/users")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert down.json()["detail"] == "the database is unreachable (ConnectionRefusedError); retry shortly"
