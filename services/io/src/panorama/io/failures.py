"""Database failures as answers the caller can act on: 503 with ``Retry-After``, 504, never a bare 500.

- Pool exhausted: no turn for a connection within the request's budget
  (:class:`~panorama.io.admission.AdmissionTimeout`), or SQLAlchemy's ``TimeoutError`` after
  ``pool_timeout`` on a path without admission; that is back-pressure, so 503 with ``Retry-After``
  rather than a hang.
- Postgres unreachable or restarting: the driver's connection errors, and
  :class:`~panorama.io.db.DatabaseUnreachable` when no connection opens at all; 503 as well. The pool's
  pre-ping drops the dead connections, so the next request after Postgres returns succeeds
  without restarting the worker.
- A statement cancelled by ``statement_timeout``: 504, the database ran out of time.
"""

from __future__ import annotations

import logging
import math

import asyncpg.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from panorama.core.errors import problem_response
from panorama.io.admission import AdmissionTimeout
from panorama.io.db import DatabaseUnreachable

log = logging.getLogger(__name__)
# Postgres error codes for a cancelled statement and a server going away.
QUERY_CANCELED = "57014"


def _retry_after(request: Request) -> str:
    timeout = getattr(request.app.state.settings, "db_pool_timeout", 1.0)
    return str(max(1, math.ceil(timeout)))


async def _pool_timeout(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database pool exhausted on %s: %s", request.url.path, exc)
    return problem_response(
        503,
        "every database connection is busy; retry shortly",
        title="Database pool exhausted",
        headers={"Retry-After": _retry_after(request)},
        instance=request.url.path,
    )


async def _db_error(request: Request, exc: Exception) -> JSONResponse:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code == QUERY_CANCELED or type(orig).__name__ == "QueryCanceledError":
        return problem_response(
            504, "the database statement ran out of time", title="Database timeout", instance=request.url.path
        )
    log.warning("database unavailable on %s: %s: %s", request.url.path, type(exc).__name__, exc)
    return problem_response(
        503,
        f"the database is unavailable ({type(orig or exc).__name__}); retry shortly",
        title="Database unavailable",
        headers={"Retry-After": "1"},
        instance=request.url.path,
    )


async def _connect_error(request: Request, exc: Exception) -> JSONResponse:
    reason = type(exc.__cause__ or exc).__name__
    log.warning("database connect failed on %s: %s", request.url.path, exc)
    return problem_response(
        503,
        f"the database is unreachable ({reason}); retry shortly",
        title="Database unavailable",
        headers={"Retry-After": "1"},
        instance=request.url.path,
    )


def install_db_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(sa_exc.TimeoutError, _pool_timeout)
    app.add_exception_handler(AdmissionTimeout, _pool_timeout)
    app.add_exception_handler(sa_exc.DBAPIError, _db_error)
    app.add_exception_handler(sa_exc.InterfaceError, _db_error)
    app.add_exception_handler(DatabaseUnreachable, _connect_error)
    # asyncpg raises its own errors unwrapped while it connects (outside SQLAlchemy's translation):
    # "the database system is starting up" (a PostgresError), a connection dropped mid-handshake
    # (InterfaceError), a protocol left mid-operation by a killed server (InternalClientError).
    app.add_exception_handler(asyncpg.exceptions.PostgresError, _db_error)
    app.add_exception_handler(asyncpg.exceptions.InterfaceError, _db_error)
    app.add_exception_handler(asyncpg.exceptions.InternalClientError, _db_error)
    # A session whose connection died mid-transaction refuses further use until rolled back.
    app.add_exception_handler(sa_exc.PendingRollbackError, _db_error)
