"""Catch the event loop blocked in the act: which route, which line, which trace.

The loop beats a heartbeat every ``interval`` (a ``call_later`` callback: ~50 cheap calls a
second). A watchdog thread checks it; when the beat is late by more than ``threshold`` the loop is
stuck inside one callback, so the watchdog captures the loop thread's stack
(``sys._current_frames()``), looks up the request that task was serving, and reports the incident
once: a WARNING log line with the stack and trace id, an event on the request's span, and a
Prometheus counter. Nothing is captured while the loop keeps its beat, so it is safe in production.

Blocked or starved: a late beat alone does not say that one callback held the loop. On a process
starved of CPU (both cores saturated, the cgroup throttled) many short callbacks make the beat just
as late, and a stack dump then points at whatever harmless line happened to run. So while the beat
is late the watchdog samples, on each tick, which callback the loop thread is in (the outermost
frame above the loop's own machinery: ``Handle._run`` for asyncio, ``run_until_complete`` for uvloop,
which has no Python frames of its own) and reads the loop thread's scheduler counters
(``/proc/self/task/<tid>/schedstat``: time on a CPU, time runnable but waiting for one). An incident
is *blocked* only if the loop thread was in one and the same callback at every sample and that
callback held it past the threshold even after the time it spent waiting for a CPU is taken off.
Anything else is *starvation*: ``panorama_event_loop_starved_total{reason="cpu"}`` when the thread
mostly waited for a CPU, ``reason="callbacks"`` when many callbacks each ran briefly, and no stack
is dumped. ``panorama_event_loop_cpu_wait_seconds_total`` adds up the loop thread's CPU wait all the
time (its rate is the fraction of wall time the loop was runnable but not running).

What it cannot see: a loop starved of the GIL by busy worker threads is late without any loop code
running (the stack is the selector's wait); that is skipped here and shows in the loop-lag gauge.
Without ``/proc`` (not Linux) there are no scheduler counters: then only the one-callback test holds.
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

from panorama.core.metrics import LOOP_BLOCKED, LOOP_CPU_WAIT, LOOP_STARVED, route_label

log = logging.getLogger(__name__)

NO_REQUEST = "(no request)"
# Library code: the "line that blocked" is the innermost frame outside these (or in panorama).
LIBRARY_DIRS = tuple(
    {str(Path(sysconfig.get_paths()[key]).resolve()) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)
INSTALLED_PANORAMA = ("/site-packages/panorama/", "/dist-packages/panorama/")
# A stack ending here is the loop waiting or dispatching, not a callback that blocks it.
LOOP_MACHINERY = ("selectors.py", "asyncio/runners.py", "asyncio/base_events.py")
# The frames between the loop's entry point and a callback (asyncio's Handle._run; uvloop has none).
DISPATCH = (*LOOP_MACHINERY, "asyncio/events.py")


def read_schedstat(tid: int) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable and waiting for one) of thread ``tid``, or None off Linux."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
            run_ns, wait_ns, _ = f.read().split()
    except (OSError, ValueError):
        return None
    return int(run_ns), int(wait_ns)


def callback_root(frame: Any) -> Any:
    """The outermost frame of the callback the loop is running, or None while it waits/dispatches.

    Walks outward from ``frame``; the root is the frame just above the innermost run of the loop's
    own machinery below it (``runners.py``/``base_events.py``/``events.py``, or ``runners.py`` then
    uvloop's C code). A callback that itself calls into ``base_events`` (``run_in_executor``) is
    still rooted at its outermost frame, as the walk keeps the outermost machinery run.
    """
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()  # outermost first
    name = [f.f_code.co_filename.replace("\\", "/") for f in frames]
    if not frames or name[-1].endswith(DISPATCH):
        return None
    start = next((i for i, n in enumerate(name) if n.endswith(DISPATCH)), None)
    if start is None:
        return frames[0]
    end = start
    while end < len(frames) and name[end].endswith(DISPATCH):
        end += 1
    return frames[end] if end < len(frames) else None


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
        self._loop_tid = 0  # the kernel's id of the loop thread, for its schedstat
        self.starved = 0  # incidents classified as starvation (also the counter's increments)
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start on the loop's thread (the lifespan): the watchdog needs that thread's id."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._loop_tid = threading.get_native_id()
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
        last_sched = read_schedstat(self._loop_tid)
        # Recent (time, schedstat) readings: the CPU wait of a late beat is counted from when the
        # beat fell due, however late this thread itself got to look.
        readings: deque[tuple[float, tuple[int, int] | None]] = deque(maxlen=256)
        # The late beat under watch: the callback first seen running, how many samples saw it (and
        # only it), and (once past the threshold) the starvation verdict should the beat come.
        episode_beat: float | None = None
        episode_root: Any = None
        samples = 0
        one_callback = False
        pending: str | None = None
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            sched = read_schedstat(self._loop_tid)
            if sched is not None and last_sched is not None:
                LOOP_CPU_WAIT.inc(max(0, sched[1] - last_sched[1]) / 1e9)
            last_sched = sched
            readings.append((now, sched))
            overslept = now - last_wake - self.interval
            last_wake = now
            beat = self._beat
            late = now - beat - self.interval
            if beat != episode_beat or late <= self.interval / 2:
                # The loop beat again: a late beat that was never judged blocked was starvation.
                if pending is not None and episode_beat != reported_beat:
                    self._starved(pending)
                episode_beat, episode_root, one_callback, pending, samples = beat, None, False, None, 0
            if late <= self.interval / 2 or beat == reported_beat:
                continue  # on time, or already reported: hold no frame
            root = self._callback_root()
            if episode_root is None and root is not None and not one_callback:
                # The first callback seen running on this late beat (the loop may have been idle
                # a moment before).
                episode_root, one_callback, samples = root, True, 1
            elif episode_root is not None and root is not episode_root:
                one_callback = False  # another callback, or the loop went back to its selector
            elif root is not None:
                samples += 1
            if overslept > self.threshold:
                # This thread was late too: the whole process was paused (SIGSTOP, CPU throttled
                # by the cgroup), not the loop. Give the loop a turn before judging it.
                continue
            if late <= self.threshold:
                continue
            waited = 0.0
            due = self._reading_at(readings, beat + self.interval)
            if sched is not None and due is not None:
                waited = max(0, sched[1] - due[1]) / 1e9
            pending = "cpu" if waited * 2 >= late else "callbacks"
            if not one_callback:
                # Late, but no single callback held the loop: starved of CPU, or swamped by many
                # short callbacks. Counted once per late beat, without a stack dump.
                reported_beat = beat
                self._starved(pending)
                pending = None
                episode_root = None
            elif samples >= 2 and late - waited > self.threshold:
                # One callback at every look (two at least), and past the threshold even without
                # the loop thread's time waiting for a CPU since the beat fell due.
                captured = self._capture(beat, late)
                if captured is not None:
                    reported_beat = beat  # once per incident: until the loop beats again
                    pending = episode_root = None
                    self._publish(*captured)
            # Else one callback, stretched by CPU wait so far: keep watching it.

    @staticmethod
    def _reading_at(readings: deque[tuple[float, tuple[int, int] | None]], when: float) -> tuple[int, int] | None:
        """The last schedstat read at or before ``when`` (else the oldest kept)."""
        chosen = None
        for at, sched in readings:
            if at > when and chosen is not None:
                break
            chosen = sched
        return chosen

    def _starved(self, reason: str) -> None:
        self.starved += 1
        LOOP_STARVED.labels(reason).inc()

    def _callback_root(self) -> Any:
        frame = sys._current_frames().get(self._loop_thread)
        try:
            return None if frame is None else callback_root(frame)
        finally:
            del frame

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
