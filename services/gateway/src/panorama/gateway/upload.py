"""Stream one multipart file field to disk, refusing it the moment it passes the size limit.

``UploadFile`` would have Starlette spool the whole body before the route runs, so the limit
could only be checked afterwards. Here the body is read chunk by chunk from ``request.stream()``
and fed to python-multipart's push parser; the file part goes to a temp file in batches of
``FLUSH_BYTES`` (memory stays bounded whatever the upload's size), and a failure of any kind
removes the temp file before the error leaves.

A slow client cannot hold a worker's socket and temp file for as long as it likes: the whole body
must arrive within ``timeout`` seconds, and after ``grace`` seconds it must have averaged at least
``min_rate`` bytes a second; otherwise 408 (the connection is closed, the part file removed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import anyio
from python_multipart.exceptions import ParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from panorama.core.errors import Problem

FIELD = "file"
FLUSH_BYTES = 1 << 20
# Room for the multipart envelope and small text fields around the file.
ENVELOPE_BYTES = 64 * 1024


class _Parts:
    """Callbacks of the push parser: track the current part, buffer the file part's bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.files = 0
        self.size = 0
        self.other_bytes = 0
        self.pending = bytearray()

    def on_part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") == FIELD.encode():
            self.files += 1
            self.in_file = self.files == 1

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.size += end - start
            if self.size <= self.limit:
                self.pending += data[start:end]
        else:
            self.other_bytes += end - start

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
        }


async def discard(path: Path) -> None:
    """Remove ``path`` even while the request is being cancelled (a client that went away)."""
    with anyio.CancelScope(shield=True):
        await anyio.Path(path).unlink(missing_ok=True)


@dataclass(frozen=True)
class Pace:
    """How slowly an upload may arrive: a total deadline and a minimum average rate after a grace period."""

    timeout: float = 600.0
    min_rate: float = 32 * 1024
    grace: float = 10.0

    def wait_limit(self, elapsed: float, received: int) -> float:
        """Seconds the next chunk may take before the upload breaks the deadline or the rate."""
        rate_ends = max(self.grace, received / self.min_rate) if self.min_rate > 0 else self.timeout
        return min(self.timeout, rate_ends) - elapsed


def _too_slow(pace: Pace, received: int, elapsed: float) -> Problem:
    return Problem(
        408,
        f"the upload arrived too slowly ({received} bytes in {elapsed:.1f}s; at least {pace.min_rate:.0f} bytes/s"
        f" after {pace.grace:g}s, all within {pace.timeout:g}s)",
        title="Request Timeout",
        headers={"Connection": "close"},
    )


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the upload is larger than the limit of {limit} bytes", title="Upload too large")


async def receive_file(request: Request, dest: Path, *, limit: int, pace: Pace | None = None) -> int:
    """Write the ``file`` field of ``request``'s multipart body to ``dest``; return its size.

    413 as soon as the file passes ``limit`` bytes, 408 once it arrives slower than ``pace``,
    415 for a body that is not multipart, 422
    for a body without exactly one non-empty ``file`` field; ``dest`` never survives an error.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Problem(415, "send the video as multipart/form-data with a 'file' field", title="Not multipart")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + ENVELOPE_BYTES:
        raise _too_large(limit)
    parts = _Parts(limit)
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    pace = pace or Pace()
    started = time.monotonic()
    received = 0
    try:
        async with await anyio.open_file(dest, "wb") as out:
            chunks = request.stream().__aiter__()
            while True:
                elapsed = time.monotonic() - started
                wait = pace.wait_limit(elapsed, received)
                if wait <= 0:
                    raise _too_slow(pace, received, elapsed)
                try:
                    with anyio.fail_after(wait):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise _too_slow(pace, received, time.monotonic() - started) from None
                received += len(chunk)
                parser.write(chunk)
                if parts.size > limit:
                    raise _too_large(limit)
                if parts.other_bytes > ENVELOPE_BYTES:
                    raise Problem(413, "the form fields besides 'file' are too large", title="Upload too large")
                if len(parts.pending) >= FLUSH_BYTES:
                    await out.write(bytes(parts.pending))
                    parts.pending.clear()
            parser.finalize()
            await out.write(bytes(parts.pending))
            parts.pending.clear()
    except BaseException as exc:
        await discard(dest)
        if isinstance(exc, ClientDisconnect):
            raise Problem(400, "the client went away before the upload was complete") from None
        if isinstance(exc, ParseError):
            raise Problem(422, f"malformed multipart body: {exc}") from None
        raise
    if parts.files != 1 or parts.size == 0:
        await discard(dest)
        what = "no" if parts.files == 0 else "more than one" if parts.files > 1 else "an empty"
        raise Problem(422, f"the form has {what} '{FIELD}' field; send exactly one non-empty video")
    return parts.size
