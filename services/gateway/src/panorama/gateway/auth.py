"""API keys: ``X-API-Key`` or ``Authorization: Bearer``, compared in constant time, never logged."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from panorama.core.errors import Problem

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def key_matches(candidate: str, keys: tuple[str, ...]) -> bool:
    """True if ``candidate`` is one of ``keys``; every key is compared, so timing leaks nothing."""
    given = candidate.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


async def require_api_key(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's key; 401 with a ``WWW-Authenticate`` challenge, 429 after too many wrong keys."""
    candidate = api_key or (bearer.credentials if bearer else None)
    limiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    if candidate:
        # Before the compare: a client over its budget learns nothing about any further key.
        await limiter.refuse_failing_client(client)
    if not candidate or not key_matches(candidate, request.app.state.settings.api_key_list):
        if candidate:
            await limiter.record_auth_failure(client)
        raise Problem(
            401,
            "a valid API key is required (X-API-Key header or Authorization: Bearer)",
            title="Unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return candidate


ApiKeyDep = Annotated[str, Depends(require_api_key)]
