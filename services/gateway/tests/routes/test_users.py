"""``/users`` through the gateway to a real io on Postgres and Redis."""

from __future__ import annotations

import time

import httpx


def _email() -> str:
    return f"gw-{time.time_ns()}@example.org"


async def test_create_get_and_list_are_relayed(gateway: httpx.AsyncClient) -> None:
    email = _email()
    created = await gateway.post("/users", json={"name": "Gw", "email": email})
    assert created.status_code == 201
    user = created.json()
    assert set(user) == {"id", "name", "email", "created_at"}
    first = await gateway.get(f"/users/{user['id']}")
    second = await gateway.get(f"/users/{user['id']}")
    assert first.json() == user
    # io's cache header crosses the gateway: the second read came from Redis.
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    page = (await gateway.get("/users", params={"limit": 100})).json()
    assert user["id"] in [u["id"] for u in page["items"]]


async def test_update_invalidates_the_cached_user(gateway: httpx.AsyncClient) -> None:
    user = (await gateway.post("/users", json={"name": "Before", "email": _email()})).json()
    await gateway.get(f"/users/{user['id']}")
    assert (await gateway.get(f"/users/{user['id']}")).headers["x-cache"] == "hit"
    assert (await gateway.patch(f"/users/{user['id']}", json={"name": "After"})).status_code == 200
    fresh = await gateway.get(f"/users/{user['id']}")
    assert (fresh.headers["x-cache"], fresh.json()["name"]) == ("miss", "After")


async def test_duplicate_email_is_409_and_unknown_id_is_404(gateway: httpx.AsyncClient) -> None:
    email = _email()
    await gateway.post("/users", json={"name": "One", "email": email})
    duplicate = await gateway.post("/users", json={"name": "Two", "email": email})
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    missing = await gateway.get("/users/2000000000")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no user with id 2000000000"


async def test_validation_errors_are_422_with_field_names(gateway: httpx.AsyncClient) -> None:
    bad_body = await gateway.post("/users", json={"name": "", "email": "nope"})
    assert bad_body.status_code == 422
    assert {e["field"] for e in bad_body.json()["errors"]} == {"body.name", "body.email"}
    for params, field in (
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"offset": -1}, "query.offset"),
    ):
        response = await gateway.get("/users", params=params)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert [e["field"] for e in (await gateway.get("/users/abc")).json()["errors"]] == ["path.user_id"]
