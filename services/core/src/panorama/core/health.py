"""Liveness and readiness: ``/healthz`` is the process alone, ``/readyz`` its own dependencies.

Each readiness check runs concurrently under its own timeout, so one dead dependency answers
503 within the timeout instead of hanging the kubelet's probe. A public service (the gateway)
answers only ready or not, per check: why a check failed (error classes, hosts, paths) goes to
its log, never to an anonymous caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

Check = Callable[[], Awaitable[object]]
log = logging.getLogger(__name__)


class Liveness(BaseModel):
    status: str


class CheckResult(BaseModel):
    ok: bool
    seconds: float
    error: str | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, CheckResult]


class PublicCheck(BaseModel):
    ok: bool


class PublicReadiness(BaseModel):
    """What a public service's ``/readyz`` says: ready or not, per check, never why."""

    status: str
    checks: dict[str, PublicCheck]


async def run_check(check: Check, timeout: float) -> CheckResult:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await check()
    except TimeoutError:
        return CheckResult(ok=False, seconds=time.perf_counter() - start, error=f"timed out after {timeout:g}s")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
        return CheckResult(ok=False, seconds=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")
    return CheckResult(ok=True, seconds=time.perf_counter() - start)


async def readiness(checks: Mapping[str, Check], timeout: float) -> Readiness:
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n], timeout) for n in names))
    by_name = dict(zip(names, results, strict=True))
    ok = all(r.ok for r in results)
    return Readiness(status="ready" if ok else "unavailable", checks=by_name)


def public_view(result: Readiness) -> dict[str, object]:
    """Ready or not, per check, and nothing else; the reasons are logged instead."""
    for name, check in result.checks.items():
        if not check.ok:
            log.warning("readiness check %s failed: %s", name, check.error)
    checks = {name: PublicCheck(ok=c.ok) for name, c in result.checks.items()}
    return PublicReadiness(status=result.status, checks=checks).model_dump()


def health_router(checks: Callable[[], Mapping[str, Check]], timeout: float, *, details: bool = True) -> APIRouter:
    """``/healthz`` and ``/readyz``; ``checks`` is called per probe so it sees the live app state.

    ``details=False`` (a public service) hides why a check failed: see :func:`public_view`.
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> Liveness:
        """Liveness: the process answers; dependencies are not consulted."""
        return Liveness(status="ok")

    @router.get("/readyz", responses={503: {"model": Readiness if details else PublicReadiness}})
    async def readyz() -> JSONResponse:
        """Readiness: every dependency answered within its timeout."""
        result = await readiness(checks(), timeout)
        body = result.model_dump() if details else public_view(result)
        return JSONResponse(body, status_code=200 if result.status == "ready" else 503)

    return router
