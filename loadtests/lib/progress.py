"""A line per step with the time since the run started, so a long run shows where it is."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator


class Progress:
    def __init__(self, stream=sys.stderr) -> None:
        self.start = time.monotonic()
        self.stream = stream

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, message: str) -> None:
        minutes, seconds = divmod(int(self.elapsed()), 60)
        load = os.getloadavg()[0]
        print(f"[{minutes:02d}:{seconds:02d} load {load:4.1f}] {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        started = time.monotonic()
        self.say(f"{message} ...")
        yield
        self.say(f"{message}: done in {time.monotonic() - started:.1f} s")
