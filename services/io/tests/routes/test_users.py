"""Users on real Postgres and Redis: create, duplicate, list bounds, get, 404, cache-aside."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

IoClient = Callable[..., Any]
NewEmail = Callable[..., str]


async def test_create_returns_201_with_id_and_created_at(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        email = new_email()
        response = await client.post("/users", json={"name": " Ada ", "email": email.upper()})
        assert response.status_code == 201
        body = response.json()
        assert set(body) == {"id", "name", "email", "created_at"}
        assert body["name"] == "Ada"
        assert body["email"] == email
        assert body["created_at"].endswith("Z")


async def test_duplicate_email_is_409(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        email = new_email()
        assert (await client.post("/users", json={"name": "A", "email": email})).status_code == 201
        response = await client.post("/users", json={"name": "B", "email": email})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert email in response.json()["detail"]


async def test_invalid_body_is_422_naming_each_field(make_io: IoClient, new_email: NewEmail, migrated_url: str) -> None:
    async with make_io(database_url=migrated_url) as (client, _):
        response = await client.post("/users", json={"name": "", "email": "not-an-email"})
        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"body.name", "body.email"}
        missing = await client.post("/users", json={})
        assert {e["field"] for e in missing.json()["errors"]} == {"body.name", "body.email"}


async def test_list_pages_by_limit_and_offset(make_io: IoClient, new_email: NewEmail, migrated_url: str) -> None:
    async with make_io(database_url=migrated_url) as (client, _):
        for i in range(3):
            await client.post("/users", json={"name": f"p{i}", "email": new_email("page")})
        first = (await client.get("/users", params={"limit": 2, "offset": 0})).json()
        second = (await client.get("/users", params={"limit": 2, "offset": 2})).json()
        assert len(first["items"]) == 2
        assert first["total"] >= 3
        assert first["limit"] == 2
        ids = [u["id"] for u in first["items"]] + [u["id"] for u in second["items"]]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"limit": "many"}, "query.limit"),
    ],
)
async def test_list_bounds_are_422(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, params: dict[str, object], field: str
) -> None:
    async with make_io(database_url=migrated_url) as (client, _):
        response = await client.get("/users", params=params)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_unknown_id_is_404_and_bad_id_is_422(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        response = await client.get("/users/2000000000")
        assert response.status_code == 404
        assert response.json()["title"] == "Not Found"
        assert (await client.get("/users/0")).status_code == 422
        assert (await client.get("/users/99999999999")).status_code == 422


async def test_get_is_miss_then_hit_and_update_invalidates(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url) as (client, _):
        user = (await client.post("/users", json={"name": "Old", "email": new_email()})).json()
        first = await client.get(f"/users/{user['id']}")
        second = await client.get(f"/users/{user['id']}")
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
        assert second.json() == user

        patched = await client.patch(f"/users/{user['id']}", json={"name": "New"})
        assert patched.status_code == 200
        after = await client.get(f"/users/{user['id']}")
        assert after.headers["x-cache"] == "miss"
        assert after.json()["name"] == "New"

        assert (await client.delete(f"/users/{user['id']}")).status_code == 204
        assert (await client.get(f"/users/{user['id']}")).status_code == 404


async def test_cached_user_expires_after_ttl(
    make_io: IoClient, new_email: NewEmail, migrated_url: str, redis_url: str
) -> None:
    async with make_io(database_url=migrated_url, redis_url=redis_url, cache_ttl=1) as (client, _):
        user = (await client.post("/users", json={"name": "T", "email": new_email()})).json()
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "miss"
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "hit"
        await asyncio.sleep(1.3)
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "miss"


async def test_without_redis_the_in_process_cache_serves_hits(
    make_io: IoClient, new_email: NewEmail, migrated_url: str
) -> None:
    async with make_io(database_url=migrated_url) as (client, app):
        assert app.state.cache.kind == "memory"
        user = (await client.post("/users", json={"name": "M", "email": new_email()})).json()
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "miss"
        assert (await client.get(f"/users/{user['id']}")).headers["x-cache"] == "hit"
