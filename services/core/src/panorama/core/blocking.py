"""Catch the event loop blocked in the act: which route, which line, which trace.

The loop beats a heartbeat every ``interval`` (a ``call_later`` callback: ~50 cheap calls a
second). A watchdog thread checks it; when the beat is late by more than ``threshold`` the loop is
stuck inside one callback, so the watchdog captures the loop thread's stack
(``sys._current_frames()``), looks up the request that task was serving, and reports the incident
once: a WARNING log line with the stack and trace id, an event on the request's span, and a
Prometheus counter. Nothing is captured while the loop keeps its beat, so it is safe in production.

What it cannot see: a loop starved of the GIL by busy worker threads is late without any loop code
running (the stack is the selector's wait); that is skipped here and shows in the loop-lag gauge.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import sysconfig
import threading
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send

from panorama.core.metrics import LOOP_BLOCKED, route_label

log = logging.getLogger(__name__)

NO_REQUEST = "(no request)"
# Library code: the "line that blocked" is the innermost frame outside these (or in panorama).
LIBRARY_DIRS = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
INSTALLED_PANORAMA = ("/site-packages/panorama/", "/dist-packages/panorama/")
# A stack ending here is the loop waiting or dispatching, not a callback that blocks it.
LOOP_MACHINERY = ("selectors.py", "asyncio/runners.py", "asyncio/base_events.py")


@dataclass(frozen=True)
class BlockingReport:
    """One incident: the loop stuck for more than ``threshold_ms`` in ``location``."""

    threshold_ms: float
    late_ms: float
    method: str | None
    route: str
    handler: str | None
    location: str  # file:line of the innermost application frame
    function: str
    stack: str
    task: str | None
    trace_id: str | None
    span_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class InFlightRequests:
    """asyncio task -> the ASGI scope and span of the request it serves.

    Written only on the loop thread (by :class:`InFlightMiddleware`), read by the watchdog while
    the loop is stuck. A single dict ``get``/``set``/``pop`` is atomic under the GIL, and while
    the loop is blocked nothing writes at all, so the read sees the blocked request's entry.
    """

    def __init__(self) -> None:
        self._by_task: dict[asyncio.Task[Any], tuple[Scope, trace.Span]] = {}

    def add(self, task: asyncio.Task[Any], scope: Scope, span: trace.Span) -> None:
        self._by_task[task] = (scope, span)

    def remove(self, task: asyncio.Task[Any]) -> None:
        self._by_task.pop(task, None)

    def get(self, task: asyncio.Task[Any] | None) -> tuple[Scope, trace.Span] | None:
        return None if task is None else self._by_task.get(task)

    def __len__(self) -> int:
        return len(self._by_task)


class InFlightMiddleware:
    """Pure ASGI, so the route runs in the very task recorded here (BaseHTTPMiddleware would not)."""

    def __init__(self, app: ASGIApp, requests: InFlightRequests) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task() if scope["type"] == "http" else None
        if task is None:
            await self.app(scope, receive, send)
            return
        # The router fills scope["route"] and scope["endpoint"] later, in this same dict.
        self.requests.add(task, scope, trace.get_current_span())
        try:
            await self.app(scope, receive, send)
        finally:
            self.requests.remove(task)


def is_library(filename: str) -> bool:
    if filename.startswith("<"):
        return True  # <frozen runpy> and the like
    path = str(Path(filename).resolve())
    if any(marker in path for marker in INSTALLED_PANORAMA):
        return False  # our own code installed into an image's site-packages
    return path.startswith(LIBRARY_DIRS)


def blocking_frame(stack: traceback.StackSummary) -> traceback.FrameSummary:
    """The innermost application frame: the caller of ``time.sleep`` or ``requests.get``."""
    for frame in reversed(stack):
        if not is_library(frame.filename):
            return frame
    return stack[-1]


class BlockingDetector:
    """Heartbeat on the loop, watchdog in a thread; one report per incident."""

    def __init__(
        self,
        *,
        threshold: float = 0.1,
        interval: float = 0.02,
        requests: InFlightRequests | None = None,
        history: int = 50,
    ) -> None:
        self.threshold = threshold
        self.interval = interval
        self.requests = requests if requests is not None else InFlightRequests()  # empty is falsy
        self.reports: deque[BlockingReport] = deque(maxlen=history)
        self._beat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start on the loop's thread (the lifespan): the watchdog needs that thread's id."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._heartbeat()
        self._thread = threading.Thread(target=self._watch, name="panorama-blocking-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        assert self._loop is not None
        self._handle = self._loop.call_later(self.interval, self._heartbeat)

    def _watch(self) -> None:
        reported_beat = None
        last_wake = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            overslept = now - last_wake - self.interval
            last_wake = now
            if overslept > self.threshold:
                # This thread was late too: the whole process was paused (SIGSTOP, CPU throttled
                # by the cgroup), not the loop. Give the loop a turn before judging it.
                continue
            beat = self._beat
            late = now - beat - self.interval
            if late <= self.threshold or beat == reported_beat:
                continue
            captured = self._capture(beat, late)
            if captured is not None:
                reported_beat = beat  # once per incident: until the loop beats again
                self._publish(*captured)

    def _capture(self, beat: float, late: float) -> tuple[BlockingReport, trace.Span] | None:
        assert self._loop is not None
        frame = sys._current_frames().get(self._loop_thread)
        # Reading the loop's current task from this thread is safe while the loop is stuck: it
        # is set when a task step starts and cleared when it ends, and no step ends while stuck.
        task = asyncio.current_task(self._loop)
        if frame is None or self._beat != beat:
            return None  # the loop moved on while we looked: this stack is not the culprit
        stack = traceback.extract_stack(frame)
        del frame
        if not stack or stack[-1].filename.replace("\\", "/").endswith(LOOP_MACHINERY):
            return None
        culprit = blocking_frame(stack)
        scope, span = self.requests.get(task) or ({}, trace.INVALID_SPAN)
        context = span.get_span_context()
        endpoint = scope.get("endpoint")
        report = BlockingReport(
            threshold_ms=round(self.threshold * 1000, 1),
            late_ms=round(late * 1000, 1),
            method=scope.get("method"),
            route=route_label(scope) if scope else NO_REQUEST,
            handler=getattr(endpoint, "__qualname__", None),
            location=f"{culprit.filename}:{culprit.lineno}",
            function=culprit.name,
            stack="".join(stack.format()),
            task=task.get_name() if task is not None else None,
            trace_id=format(context.trace_id, "032x") if context.is_valid else None,
            span_id=format(context.span_id, "016x") if context.is_valid else None,
        )
        return report, span

    def _publish(self, report: BlockingReport, span: trace.Span) -> None:
        self.reports.append(report)
        LOOP_BLOCKED.labels(report.route).inc()
        if span.is_recording():
            # The request is still stuck in it, so the span has not ended; Span.add_event takes
            # the span's own lock, so adding from this thread is safe.
            span.add_event(
                "panorama.event_loop_blocked",
                {
                    "panorama.blocked.threshold_ms": report.threshold_ms,
                    "code.filepath": report.location.rsplit(":", 1)[0],
                    "code.lineno": int(report.location.rsplit(":", 1)[1]),
                    "code.function": report.function,
                    "code.stacktrace": report.stack,
                },
            )
        log.warning(
            "event loop blocked for more than %.0f ms by %s %s (%s) at %s in %s\n%s",
            report.threshold_ms,
            report.method or "",
            report.route,
            report.handler or "-",
            report.location,
            report.function,
            report.stack,
            extra={
                "blocked": {k: v for k, v in report.as_dict().items() if k not in ("stack", "trace_id", "span_id")},
                "trace_id": report.trace_id,
                "span_id": report.span_id,
            },
        )
