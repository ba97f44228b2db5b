"""Executors with admission control and deadlines: the process pool for CPU work, threads for medium work.

Each :class:`Lane` wraps one executor created in the lifespan (after gunicorn's fork, one per
worker) and bounds the tasks it holds: a task counts from submit until it really finishes, so a
request that timed out still holds its slot while its task runs. The traps it handles:

- Backpressure: past ``capacity`` tasks a request gets 503 with ``Retry-After`` at once, instead
  of an unbounded queue inside the executor that every later request waits behind.
- Deadlines: ``Future.cancel()`` only works on a task no child has picked up. A
  ProcessPoolExecutor moves up to ``size + 1`` tasks into its call queue and marks them running,
  after which they cannot be cancelled; those tasks stop themselves at their deadline
  (see :mod:`panorama.compute.child`), so a 504 frees the core soon after as well.
- A dead child (SIGKILL, the OOM killer) breaks the whole ProcessPoolExecutor: every pending
  future fails with BrokenProcessPool and every later submit too. The lane replaces the executor
  once (a lock and an identity check, however many requests saw the break) and answers 503.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from panorama.compute.child import ChildConfig, DeadlineExceeded, init_child, ping
from panorama.compute.settings import StartMethod
from panorama.core.errors import Problem

T = TypeVar("T")
LaneKind = Literal["process", "thread"]
log = logging.getLogger(__name__)


class LaneReport(BaseModel):
    kind: LaneKind
    size: int
    capacity: int
    in_flight: int
    busy: int
    queued: int
    completed: int
    rejected: int
    timed_out: int
    cancelled: int


class ProcessLaneReport(LaneReport):
    start_method: StartMethod
    pids: list[int]
    replacements: int


class Lane:
    """One executor, the tasks it holds, and what happened to them. Building it does no I/O."""

    kind: LaneKind = "thread"

    def __init__(self, size: int, capacity: int, *, retry_after: int = 1) -> None:
        if size < 1 or capacity < 1:
            raise ValueError(f"size and capacity must be at least 1, got {size} and {capacity}")
        self.size = size
        self.capacity = capacity
        self.retry_after = retry_after
        self._executor: Executor | None = None
        # Done callbacks run on the executor's threads, not the loop: guard the shared state.
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()
        self.completed = self.rejected = self.timed_out = self.cancelled = 0

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise RuntimeError(f"{self.kind} pool used before the lifespan started it")
        return self._executor

    def start(self) -> None:
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        return ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="compute-medium")

    def _submit(self, executor: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
        # What loop.run_in_executor does, but keeping the concurrent future: the slot is released
        # when the thread really finishes, and cancel() needs it. The copied context carries the
        # request's contextvars (the current span, log fields) into the worker thread.
        return executor.submit(contextvars.copy_context().run, fn, *args)

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)
            if not future.cancelled() and future.exception() is None:
                self.completed += 1

    async def run(self, fn: Callable[..., T], *args: Any, deadline: float) -> T:
        """Run ``fn(*args)`` before ``deadline`` (epoch seconds), or raise a 503/504 :class:`Problem`."""
        budget = deadline - time.time()
        if budget <= 0:
            self.timed_out += 1
            raise Problem(504, "the request's deadline had passed before compute could start it", title="Timeout")
        with self._lock:
            full = len(self._futures) >= self.capacity
            if full:
                self.rejected += 1
        if full:
            raise Problem(
                503,
                f"the {self.kind} pool is at capacity ({self.capacity} tasks in flight per worker); retry shortly",
                title="Busy",
                headers={"Retry-After": str(self.retry_after)},
            )
        executor = self.executor
        try:
            future = self._submit(executor, fn, *args)
        except BrokenProcessPool:
            # A child died while the pool was idle: nothing of this request was lost yet.
            executor = await self._replace(executor)
            future = self._submit(executor, fn, *args)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._done)
        try:
            async with asyncio.timeout(budget):
                return await asyncio.wrap_future(future)
        except (TimeoutError, DeadlineExceeded):
            # wrap_future already asked the future to cancel; it succeeds only if still queued.
            future.cancel()
            self.timed_out += 1
            if future.cancelled():
                self.cancelled += 1
                fate = "its queued task was cancelled"
            else:
                fate = "its running task stops itself at the deadline"
            raise Problem(504, f"compute did not finish within {budget:.3g}s; {fate}", title="Timeout") from None
        except BrokenProcessPool:
            await self._replace(executor)
            raise Problem(
                503,
                "a compute child process died while running this task; the pool was replaced, retry",
                title="Worker lost",
                headers={"Retry-After": str(self.retry_after)},
            ) from None

    async def _replace(self, broken: Executor) -> Executor:
        return broken

    def _running(self) -> tuple[int, int]:
        with self._lock:
            futures = list(self._futures)
        return len(futures), sum(1 for f in futures if f.running())

    def report(self) -> LaneReport:
        in_flight, busy = self._running()
        return LaneReport(
            kind=self.kind,
            size=self.size,
            capacity=self.capacity,
            in_flight=in_flight,
            busy=busy,
            queued=in_flight - busy,
            completed=self.completed,
            rejected=self.rejected,
            timed_out=self.timed_out,
            cancelled=self.cancelled,
        )

    async def shutdown(self) -> None:
        """Cancel queued tasks and wait for running ones (they stop by their deadlines)."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


class ProcessLane(Lane):
    """The process pool for CPU work: children from forkserver or spawn, replaced when one dies."""

    kind: LaneKind = "process"

    def __init__(
        self, size: int, capacity: int, *, start_method: StartMethod, child: ChildConfig, retry_after: int = 1
    ) -> None:
        super().__init__(size, capacity, retry_after=retry_after)
        self.start_method = start_method
        self.child = child
        self.replacements = 0
        self._replace_lock = asyncio.Lock()

    def _new_executor(self) -> Executor:
        # Not fork: the worker is multi-threaded (this executor's manager thread, the thread pool,
        # AnyIO's threads, exporters), and fork copies locks other threads hold, so a child can
        # deadlock on its first log line. forkserver forks children from a clean single-threaded
        # server started on first use (per worker, after gunicorn's fork), cheaper than spawn's
        # fresh interpreter per child; spawn remains available for platforms without it.
        context = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            # Imported once in the server, then inherited by every forked child.
            context.set_forkserver_preload(["panorama.compute.child"])
        return ProcessPoolExecutor(
            max_workers=self.size, mp_context=context, initializer=init_child, initargs=(self.child,)
        )

    def _submit(self, executor: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
        return executor.submit(fn, *args)

    async def _replace(self, broken: Executor) -> Executor:
        async with self._replace_lock:
            if self._executor is broken:
                self.replacements += 1
                log.warning("a compute child died; replacing the process pool", extra={"pids": self.pids()})
                # Non-blocking: the broken executor has already terminated its other children.
                broken.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
        return self.executor

    @property
    def broken(self) -> bool:
        return bool(getattr(self._executor, "_broken", False))

    async def check(self) -> None:
        """Readiness: a broken pool is replaced here too, so an idle pod does not stay unready."""
        if self.broken:
            await self._replace(self.executor)

    async def warm_up(self, timeout: float) -> list[int]:
        """Start every child (and its initializer) before the worker reports ready."""
        # Children start one by one and the first ready one would take every quick ping: keep
        # sending pings that hold their child a moment until each child has answered one.
        seen: set[int] = set()
        async with asyncio.timeout(timeout):
            while len(seen) < self.size:
                batch = [asyncio.wrap_future(self.executor.submit(ping, 0.05)) for _ in range(self.size)]
                seen.update(await asyncio.gather(*batch))
        return sorted(seen)

    def pids(self) -> list[int]:
        # ProcessPoolExecutor keeps its children in a private dict; no public API lists them.
        processes = getattr(self._executor, "_processes", None) or {}
        try:
            return sorted(processes)
        except RuntimeError:  # resized by the manager thread while we read it
            return []

    def report(self) -> ProcessLaneReport:
        base = super().report()
        return ProcessLaneReport(
            **base.model_dump(), start_method=self.start_method, pids=self.pids(), replacements=self.replacements
        )
