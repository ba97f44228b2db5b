"""Gateway routes: user records, served by io (async SQLAlchemy, cache-aside reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from panorama.gateway.deps import IoDep, SettingsDep

router = APIRouter(tags=["users"])

UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
NOT_FOUND = {404: {"description": "no such user"}}


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320, pattern=r"^\s*[^@\s]+@[^@\s]+\s*$")


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320, pattern=r"^\s*[^@\s]+@[^@\s]+\s*$")


class User(BaseModel):
    id: int
    name: str
    email: str
    created_at: datetime


class UserPage(BaseModel):
    items: list[User]
    limit: int
    offset: int
    total: int


@router.post("/users", status_code=201, response_model=User, responses={409: {"description": "email taken"}})
async def create_user(body: UserCreate, io: IoDep, settings: SettingsDep) -> Response:
    """Create a user; 409 if the email is taken."""
    upstream = await io.request("POST", "/users", json=body.model_dump(), timeout=settings.timeout_default)
    return upstream.relay()


@router.get("/users", response_model=UserPage)
async def list_users(
    io: IoDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """A page of users ordered by id (``limit`` 1..100, ``offset`` from 0), with the total."""
    params = {"limit": limit, "offset": offset}
    upstream = await io.request("GET", "/users", params=params, timeout=settings.timeout_default)
    return upstream.relay()


@router.get("/users/{user_id}", response_model=User, responses=NOT_FOUND)
async def get_user(user_id: UserId, io: IoDep, settings: SettingsDep) -> Response:
    """One user; ``X-Cache`` says whether io's cache answered (hit) or the database (miss)."""
    upstream = await io.request("GET", f"/users/{user_id}", timeout=settings.timeout_default)
    return upstream.relay()


@router.patch("/users/{user_id}", response_model=User, responses={**NOT_FOUND, 409: {"description": "email taken"}})
async def update_user(user_id: UserId, body: UserUpdate, io: IoDep, settings: SettingsDep) -> Response:
    """Change a user's name or email (io invalidates its cached copy)."""
    payload = body.model_dump(exclude_unset=True)
    upstream = await io.request("PATCH", f"/users/{user_id}", json=payload, timeout=settings.timeout_default)
    return upstream.relay()
