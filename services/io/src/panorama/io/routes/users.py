"""Users in the database, with cache-aside reads of single users."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from panorama.core import contract
from panorama.core.contract import PAGE_MAX, USER_ID_MAX, UserCreate, UserPage, UserUpdate
from panorama.core.errors import Problem
from panorama.io.cache import CacheUnavailable
from panorama.io.deps import CacheDep, DeadlineDep, SessionDep
from panorama.io.models import User

router = APIRouter(prefix="/users", tags=["users"])
log = logging.getLogger(__name__)

# Postgres `integer` ids: a larger number is a 422 here, not a driver error later.
UserId = Annotated[int, Path(ge=1, le=USER_ID_MAX), contract.DIGITS_ONLY]


def cache_key(user_id: int) -> str:
    return f"user:{user_id}"


async def _get_or_404(session: SessionDep, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise Problem(404, f"no user with id {user_id}", title="Not Found")
    return user


async def _invalidate(cache: CacheDep, user_id: int) -> None:
    try:
        await cache.delete(cache_key(user_id))
    except CacheUnavailable as exc:
        # The entry may outlive the change until its TTL runs out; nothing better is possible
        # while the cache is down, and failing the write would be worse.
        log.warning("cache invalidation of user %s failed: %s", user_id, exc)


def _conflict(email: str) -> Problem:
    return Problem(409, f"a user with email {email!r} already exists", title="Conflict")


@router.post("", status_code=201, responses={409: {"description": "email taken"}})
async def create_user(body: UserCreate, session: SessionDep) -> contract.User:
    """Create a user; 409 if the email is taken."""
    user = User(name=body.name, email=body.email)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise _conflict(body.email) from None
    return contract.User.model_validate(user)


@router.get("")
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> UserPage:
    """A page of users ordered by id, with the total count."""
    rows = await session.scalars(select(User).order_by(User.id).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(User))
    return UserPage(items=[contract.User.model_validate(u) for u in rows], limit=limit, offset=offset, total=total or 0)


@router.get("/{user_id}", responses={404: {"description": "no such user"}})
async def get_user(user_id: UserId, request: Request, response: Response, deadline: DeadlineDep) -> contract.User:
    """One user, from the cache if present (``X-Cache: hit``), else from the database (``miss``).

    Read-through (:mod:`panorama.io.readthrough`): concurrent misses for one user are one query,
    and a hot user is refreshed before its entry expires. No session is opened for a hit; a miss
    waits its turn for a connection within the request's budget (:mod:`panorama.io.admission`).
    """
    engine, admission = request.app.state.read_engine, request.app.state.db_admission

    async def load() -> dict[str, Any] | None:
        # One autocommit statement: no BEGIN and no ROLLBACK round trips around it, so a miss holds
        # its pooled connection for one query (the pool's pre-ping aside), not three.
        async with admission.slot(deadline), engine.connect() as conn:
            row = (await conn.execute(select(User.__table__).where(User.id == user_id))).mappings().first()
        return None if row is None else contract.User.model_validate(dict(row)).model_dump(mode="json")

    value, outcome = await request.app.state.read_through.get(cache_key(user_id), load)
    if value is None:
        raise Problem(404, f"no user with id {user_id}", title="Not Found")
    response.headers["X-Cache"] = outcome
    return contract.User.model_validate(value)


@router.patch("/{user_id}", responses={404: {"description": "no such user"}, 409: {"description": "email taken"}})
async def update_user(user_id: UserId, body: UserUpdate, session: SessionDep, cache: CacheDep) -> contract.User:
    """Change a user's name or email; the cached copy is invalidated."""
    user = await _get_or_404(session, user_id)
    for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(user, field, value)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise _conflict(body.email or "") from None
    # After the commit: invalidating first would let a concurrent read re-cache the old row.
    await _invalidate(cache, user_id)
    return contract.User.model_validate(user)


@router.delete("/{user_id}", status_code=204, responses={404: {"description": "no such user"}})
async def delete_user(user_id: UserId, session: SessionDep, cache: CacheDep) -> None:
    """Delete a user; the cached copy is invalidated."""
    user = await _get_or_404(session, user_id)
    await session.delete(user)
    await session.commit()
    await _invalidate(cache, user_id)
