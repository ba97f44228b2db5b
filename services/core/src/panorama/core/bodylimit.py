"""Size and nesting limits on JSON request bodies, checked before anything parses or stores them.

A pure ASGI middleware (no BaseHTTPMiddleware: the body is read here, once, then replayed to the
app). A body over ``max_bytes`` is refused with 413 as soon as its ``Content-Length`` or its
running total says so, without reading the rest; a JSON body nested deeper than ``max_depth`` is
refused with 422 by a streaming scan of its bytes (strings and escapes respected), so no parser
ever recurses into it and no route ever stores it. Multipart bodies (video uploads) are not
touched: their own limits live with the upload code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from panorama.core.errors import problem_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_JSON_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class DepthScanner:
    """Tracks JSON nesting across chunks; ``feed`` returns False once ``limit`` is exceeded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, chunk: bytes) -> bool:
        depth, in_string, escaped, limit = self.depth, self.in_string, self.escaped, self.limit
        for byte in chunk:
            if in_string:
                if escaped:
                    escaped = False
                elif byte == _BACKSLASH:
                    escaped = True
                elif byte == _QUOTE:
                    in_string = False
            elif byte == _QUOTE:
                in_string = True
            elif byte in _OPEN:
                depth += 1
                if depth > limit:
                    self.depth = depth
                    return False
            elif byte in _CLOSE:
                depth -= 1
        self.depth, self.in_string, self.escaped = depth, in_string, escaped
        return True


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def is_json(content_type: str | None) -> bool:
    """What FastAPI would parse as JSON: no content type, ``application/json`` or ``application/*+json``."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BodyLimitMiddleware:
    """413 for a JSON body over ``max_bytes``, 422 for one nested deeper than ``max_depth``."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_JSON_BYTES, max_depth: int = DEFAULT_MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        if not is_json(_header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, send)
            return
        scanner = DepthScanner(self.max_depth)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            if not scanner.feed(chunk):
                response = problem_response(
                    422,
                    f"the JSON body is nested deeper than {self.max_depth} levels",
                    title="JSON too deeply nested",
                    instance=scope.get("path"),
                )
                await response(scope, _drained(), send)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        response = problem_response(
            413,
            f"the JSON body is larger than {self.max_bytes} bytes",
            title="Content Too Large",
            headers={"Connection": "close"},
            instance=scope.get("path"),
        )
        await response(scope, _drained(), send)


def _drained() -> Receive:
    async def receive() -> Message:
        return {"type": "http.disconnect"}

    return receive
