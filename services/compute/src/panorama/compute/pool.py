"""Executors with admission control and deadlines: the process pool for CPU work, the thread pool to compare.

Each :class:`Pool` wraps one executor created in the lifespan (after gunicorn's fork, one per
worker). The traps it handles:

- Backpressure: past ``capacity`` tasks in flight (waiting or running) a request gets 503 with
  ``Retry-After`` at once, instead of joining an unbounded queue inside the executor.
- Cancellation: ``Future.cancel()`` only works on a task the executor has not started, and a
  ProcessPoolExecutor starts eagerly: it moves every task its call queue can hold (``size + 1``
  beyond those the children already took) in and marks them running, so with a few tasks queued
  none of them can be cancelled. The pool therefore never hands the executor more tasks than it
  has workers; the rest wait on an asyncio semaphore, where a passed deadline cancels for real
  and exactly (the task is never started). A task already running cannot be stopped from here
  short of killing its child: it checks its own deadline and stops (:mod:`panorama.compute.child`),
  and it keeps its slot until it has, so the pool is never overcommitted.
- A dead child (SIGKILL, the OOM killer) breaks the whole ProcessPoolExecutor: every pending
  future fails with BrokenProcessPool and every later submit too. The pool replaces the executor
  once (a lock and an identity check, however many requests saw the break) and answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import multiprocessing
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
PoolKind = Literal["process", "thread"]
log = logging.getLogger(__name__)


class PoolStatus(BaseModel):
    kind: PoolKind
    size: int
    capacity: int
    in_flight: int
    busy: int
    queued: int
    completed: int
    rejected: int
    timed_out: int
    cancelled: int


class ProcessPoolStatus(PoolStatus):
    start_method: StartMethod
    pids: list[int]
    replacements: int


class Pool:
    """One executor, the tasks it holds, and what happened to them. Building it does no I/O."""

    kind: PoolKind

    def __init__(self, size: int, capacity: int, *, retry_after: int = 1) -> None:
        if size < 1 or capacity < size:
            raise ValueError(f"need 1 <= size <= capacity, got size {size} and capacity {capacity}")
        self.size = size
        self.capacity = capacity
        self.retry_after = retry_after
        self._executor: Executor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Touched only on the event loop: done callbacks hop over with call_soon_threadsafe.
        self._running: set[Future[Any]] = set()
        self.in_flight = 0
        self.completed = self.rejected = self.timed_out = self.cancelled = 0

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            raise RuntimeError(f"{self.kind} pool used before the lifespan started it")
        return self._executor

    def start(self) -> None:
        """Create the executor; call from the lifespan, on the loop that will use it."""
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.size)
        self._executor = self._new_executor()

    def _new_executor(self) -> Executor:
        raise NotImplementedError

    def _submit(self, executor: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
        return executor.submit(fn, *args)

    def _done(self, future: Future[Any]) -> None:
        # Runs on an executor thread (or the loop, if already done): hop to the loop.
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._finished, future)

    def _busy(self, detail: str) -> Problem:
        return Problem(503, detail, title="Busy", headers={"Retry-After": str(self.retry_after)})

    async def run(self, fn: Callable[..., T], *args: Any, deadline: float) -> T:
        """Run ``fn(*args)`` before ``deadline`` (epoch seconds), or raise a 503/504 :class:`Problem`."""
        budget = self._admit(deadline)
        holds_slot = False
        try:
            await self._wait_for_slot(budget)
            holds_slot = True
            future, executor = await self._hand_over(fn, *args)
        except BaseException:
            self._leave(release_slot=holds_slot)
            raise
        # From here the slot is the future's: it leaves when the task really ends, not when we stop waiting.
        return await self._outcome(future, executor, deadline, budget)

    # --- admission and accounting: every task enters through _admit and leaves through _leave once.

    def _admit(self, deadline: float) -> float:
        """Count the task in (its budget in seconds), or refuse it: 504 past its deadline, 503 at capacity."""
        assert self._slots is not None, "start() the pool first"
        budget = deadline - time.time()
        if budget <= 0:
            self.timed_out += 1
            raise Problem(504, "the request's deadline had passed before compute could start it", title="Timeout")
        if self.in_flight >= self.capacity:
            self.rejected += 1
            raise self._busy(
                f"the {self.kind} pool is at capacity ({self.capacity} tasks in flight per worker); retry shortly"
            )
        self.in_flight += 1
        return budget

    def _leave(self, *, release_slot: bool) -> None:
        self.in_flight -= 1
        if release_slot:
            assert self._slots is not None
            self._slots.release()

    def _finished(self, future: Future[Any]) -> None:
        self._running.discard(future)
        self._leave(release_slot=True)
        if not future.cancelled() and future.exception() is None:
            self.completed += 1

    # --- the steps of run()

    async def _wait_for_slot(self, budget: float) -> None:
        """Wait for a free worker; a deadline passing here cancels the task for real (never started)."""
        assert self._slots is not None
        try:
            async with asyncio.timeout(budget):
                await self._slots.acquire()
        except TimeoutError:
            self.timed_out += 1
            self.cancelled += 1
            raise Problem(
                504, f"compute did not start the task within {budget:.3g}s; it was cancelled unstarted", title="Timeout"
            ) from None

    async def _hand_over(self, fn: Callable[..., T], *args: Any) -> tuple[Future[T], Executor]:
        future, executor = await self._submit_or_replace(fn, *args)
        self._running.add(future)
        future.add_done_callback(self._done)
        return future, executor

    async def _outcome(self, future: Future[T], executor: Executor, deadline: float, budget: float) -> T:
        """The task's result, or a 504 at the deadline / a 503 if its child died."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                return await asyncio.wrap_future(future)
        except (TimeoutError, DeadlineExceeded):
            self.timed_out += 1
            raise Problem(
                504,
                f"compute did not finish within {budget:.3g}s; the running task stops itself at the deadline",
                title="Timeout",
            ) from None
        except BrokenProcessPool:
            await self._replace(executor)
            raise self._busy(
                "a compute child process died while running this task; the pool was replaced, retry"
            ) from None

    async def _submit_or_replace(self, fn: Callable[..., T], *args: Any) -> tuple[Future[T], Executor]:
        executor = self.executor
        try:
            return self._submit(executor, fn, *args), executor
        except BrokenProcessPool:
            # A child died while the pool was idle: nothing of this request was lost yet.
            executor = await self._replace(executor)
            return self._submit(executor, fn, *args), executor

    async def _replace(self, broken: Executor) -> Executor:
        return broken

    def report(self) -> PoolStatus:
        busy = len(self._running)
        return PoolStatus(
            kind=self.kind,
            size=self.size,
            capacity=self.capacity,
            in_flight=self.in_flight,
            busy=busy,
            queued=self.in_flight - busy,
            completed=self.completed,
            rejected=self.rejected,
            timed_out=self.timed_out,
            cancelled=self.cancelled,
        )

    async def shutdown(self) -> None:
        """Wait for running tasks (they stop by their deadlines); nothing else was handed over."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


class ThreadPool(Pool):
    """The thread pool, for work that releases the GIL or is too short to be worth a process."""

    kind: PoolKind = "thread"

    def _new_executor(self) -> Executor:
        return ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="compute-thread")

    def _submit(self, executor: Executor, fn: Callable[..., T], *args: Any) -> Future[T]:
        # What loop.run_in_executor does, but keeping the concurrent future: the slot is released
        # when the thread really finishes. The copied context carries the request's contextvars
        # (the current span, log fields) into the worker thread.
        return executor.submit(contextvars.copy_context().run, fn, *args)


class ProcessPool(Pool):
    """The process pool for CPU work: children from forkserver or spawn, replaced when one dies."""

    kind: PoolKind = "process"

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
                # submit() forks the children (and the forkserver itself) synchronously: off the loop,
                # or the blocking detector rightly reports a ~200 ms stall at start-up.
                futures = await asyncio.to_thread(lambda: [self.executor.submit(ping, 0.05) for _ in range(self.size)])
                seen.update(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
        return sorted(seen)

    def pids(self) -> list[int]:
        # ProcessPoolExecutor keeps its children in a private dict; no public API lists them.
        processes = getattr(self._executor, "_processes", None) or {}
        try:
            return sorted(processes)
        except RuntimeError:  # resized by the manager thread while we read it
            return []

    def report(self) -> ProcessPoolStatus:
        base = super().report()
        return ProcessPoolStatus(
            **base.model_dump(), start_method=self.start_method, pids=self.pids(), replacements=self.replacements
        )
