"""The ``def`` contrast: the same user read with a sync driver, run in the thread pool."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from panorama.core import contract
from panorama.core.errors import Problem
from panorama.io.deps import SyncEngineDep
from panorama.io.models import User
from panorama.io.routes.users import UserId

router = APIRouter(prefix="/sync", tags=["demo"])


@router.get("/users/{user_id}", responses={404: {"description": "no such user"}})
def get_user_sync(user_id: UserId, engine: SyncEngineDep) -> contract.User:
    """One user through psycopg in a worker thread (no cache): the thread-pool path, for benchmarks."""
    # `def`, not `async def`: the sync driver blocks, so FastAPI runs this in AnyIO's thread pool,
    # whose tokens equal the sync pool's size (one connection per thread, never a wait for one).
    with Session(engine) as session:
        user = session.get(User, user_id)
        if user is None:
            raise Problem(404, f"no user with id {user_id}", title="Not Found")
        return contract.User.model_validate(user)
