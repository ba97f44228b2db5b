"""Gateway routes: user records, served by io (async SQLAlchemy, cache-aside reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from panorama.core import contract
from panorama.core.contract import PAGE_MAX, USER_ID_MAX, User, UserCreate, UserPage, UserUpdate
from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(tags=["users"])

UserId = Annotated[int, Path(ge=1, le=USER_ID_MAX), contract.DIGITS_ONLY]
NOT_FOUND = {404: {"description": "no such user"}}


@router.post("/users", status_code=201, response_model=User, responses={409: {"description": "email taken"}})
async def create_user(body: UserCreate, io: IoDep, settings: SettingsDep) -> Response:
    """Create a user; 409 if the email is taken."""
    upstream = await io.request("POST", "/users", json=body.model_dump(), timeout=settings.timeout_default)
    return upstream.relay(User)


@router.get("/users", response_model=UserPage)
async def list_users(
    io: IoDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """A page of users ordered by id (``limit`` 1..100, ``offset`` from 0), with the total."""
    params = {"limit": limit, "offset": offset}
    upstream = await io.request("GET", "/users", params=params, timeout=settings.timeout_default)
    return upstream.relay(UserPage)


@router.get("/users/{user_id}", response_model=User, responses=NOT_FOUND)
async def get_user(user_id: UserId, io: IoDep, settings: SettingsDep) -> Response:
    """One user; ``X-Cache`` says whether io's cache answered (hit) or the database (miss)."""
    upstream = await io.request("GET", f"/users/{user_id}", timeout=settings.timeout_default)
    return upstream.relay(User)


@router.patch("/users/{user_id}", response_model=User, responses={**NOT_FOUND, 409: {"description": "email taken"}})
async def update_user(user_id: UserId, body: UserUpdate, io: IoDep, settings: SettingsDep) -> Response:
    """Change a user's name or email (io invalidates its cached copy)."""
    payload = body.model_dump(exclude_unset=True)
    upstream = await io.request("PATCH", f"/users/{user_id}", json=payload, timeout=settings.timeout_default)
    return upstream.relay(User)
