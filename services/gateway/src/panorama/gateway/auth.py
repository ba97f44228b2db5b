"""API keys: ``X-API-Key`` or ``Authorization: Bearer``, compared in constant time, never logged.

One ``async def`` dependency reads both headers itself. FastAPI's ``APIKeyHeader`` and
``HTTPBearer`` would do the same, but as two more dependencies resolved on every request: FastAPI's
dependency solving was 22 % of the gateway's samples on ``GET /users/{id}`` (py-spy), three of its
seven dependencies were these. The OpenAPI document still declares both schemes
(``document_security``), so ``/docs`` offers the same Authorize dialog.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from panorama.core.errors import Problem

API_KEY_HEADER = "X-API-Key"
# The names FastAPI gives the two schemes (the published OpenAPI is unchanged by doing it by hand).
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
    "HTTPBearer": {"type": "http", "scheme": "bearer"},
}


def key_matches(candidate: str, keys: tuple[str, ...]) -> bool:
    """True if ``candidate`` is one of ``keys``; every key is compared, so timing leaks nothing."""
    given = candidate.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def presented_key(request: Request) -> str | None:
    """The key the caller sent: ``X-API-Key``, else the credentials of ``Authorization: Bearer <key>``."""
    headers = request.headers
    key = headers.get(API_KEY_HEADER)
    if key:
        return key
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    return credentials if credentials and scheme.lower() == "bearer" else None


async def require_api_key(request: Request) -> str:
    """The caller's key; 401 with a ``WWW-Authenticate`` challenge, 429 after too many wrong keys."""
    candidate = presented_key(request)
    limiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    if candidate and key_matches(candidate, request.app.state.settings.api_key_list):
        # A valid key is refused too while its client is over its wrong-key budget: such a client
        # learns nothing about any key (the limiter reads that standing at most once a second).
        await limiter.refuse_failing_client(client)
        return candidate
    if candidate:
        await limiter.record_auth_failure(client)  # counted; 429 instead of 401 once over the budget
    raise Problem(
        401,
        "a valid API key is required (X-API-Key header or Authorization: Bearer)",
        title="Unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


def document_security(app: FastAPI, routes: Iterable[Any]) -> None:
    """Declare both schemes in the app's OpenAPI, on every operation of ``routes`` (the guarded ones)."""
    guarded = {
        (route.path, method.lower()) for route in routes if isinstance(route, APIRoute) for method in route.methods
    }
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    if (path, method) in guarded:
                        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
