"""The internal edge: io and compute answer only callers that present the cluster's shared token.

NetworkPolicies already keep outsiders away in Kubernetes; the token is the second lock (and the
hook where mTLS identities would be checked instead). Probes and metrics stay open to the kubelet
and Prometheus.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

INTERNAL_TOKEN_HEADER = "x-panorama-internal-token"  # noqa: S105 - a header name, not a secret
OPEN_PATHS = ("/healthz", "/readyz", "/metrics")


class InternalTokenMiddleware:
    """Refuse (403, problem+json) any request without the token; compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(INTERNAL_TOKEN_HEADER.encode(), b"")
        if hmac.compare_digest(given, self.token):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Forbidden",
                "status": 403,
                "detail": "internal service: call it through the gateway",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
