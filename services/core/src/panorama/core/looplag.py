"""Event-loop lag: how late the loop runs a callback it was asked to run on time.

A task sleeps for ``interval`` and measures how much later than asked it woke up. Anything that
blocks the loop (a sync driver call, CPU work inside ``async def``) shows up as lag at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from panorama.core.background import LoopTask


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


class LoopLagMonitor(LoopTask):
    """Samples the running loop's lag every ``interval`` seconds, keeping a window of samples."""

    name = "loop-lag-monitor"

    def __init__(self, interval: float = 0.05, window: int = 1200) -> None:
        super().__init__()
        self.interval = interval
        self._samples: deque[float] = deque(maxlen=window)

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self._samples.append(max(0.0, time.perf_counter() - start - self.interval))

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
