"""Event-loop lag: how late the loop runs a callback it was asked to run on time.

A task sleeps for ``interval`` and measures how much later than asked it woke up. Anything that
blocks the loop (a sync driver call, CPU work inside ``async def``) shows up as lag at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class LagStats:
    current: float
    max: float
    p99: float
    samples: int

    def as_dict(self) -> dict[str, float | int]:
        return {"current_s": self.current, "max_s": self.max, "p99_s": self.p99, "samples": self.samples}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class LoopLagMonitor:
    """Samples the running loop's lag every ``interval`` seconds, keeping a window of samples."""

    def __init__(self, interval: float = 0.05, window: int = 1200) -> None:
        self.interval = interval
        self._samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self._samples.append(max(0.0, time.perf_counter() - start - self.interval))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def reset(self) -> None:
        self._samples.clear()

    def stats(self) -> LagStats:
        samples = list(self._samples)
        return LagStats(
            current=samples[-1] if samples else 0.0,
            max=max(samples, default=0.0),
            p99=percentile(samples, 99),
            samples=len(samples),
        )
