"""Liveness and readiness: ``/healthz`` is the process alone, ``/readyz`` its own dependencies.

Each readiness check runs concurrently under its own timeout, so one dead dependency answers
503 within the timeout instead of hanging the kubelet's probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

Check = Callable[[], Awaitable[object]]


class Liveness(BaseModel):
    status: str


class CheckResult(BaseModel):
    ok: bool
    seconds: float
    error: str | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, CheckResult]


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


def health_router(checks: Callable[[], Mapping[str, Check]], timeout: float) -> APIRouter:
    """``/healthz`` and ``/readyz``; ``checks`` is called per probe so it sees the live app state."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> Liveness:
        """Liveness: the process answers; dependencies are not consulted."""
        return Liveness(status="ok")

    @router.get("/readyz", responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        """Readiness: every dependency answered within its timeout."""
        result = await readiness(checks(), timeout)
        return JSONResponse(result.model_dump(), status_code=200 if result.status == "ready" else 503)

    return router
