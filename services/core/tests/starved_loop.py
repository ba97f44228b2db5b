"""Child process for test_blocking: an event loop under the detector, swamped or blocked on purpose.

``python starved_loop.py callbacks SECONDS [INCIDENTS]``: hundreds of tasks each running many
0.1 ms steps of CPU time (cheap reads, as a saturated service does) for SECONDS, and on (up to ten
times as long) until the detector has counted INCIDENTS late beats, however the scheduler happened
to share the core. ``python starved_loop.py block SECONDS``:
one callback burning SECONDS of CPU time. Prints one JSON line: the detector's reports, its
starvation count and the loop thread's CPU wait, and, for ``block``, the line that burned.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable

from prometheus_client import REGISTRY

from panorama.core.blocking import BlockingDetector

# CPU time per step, not a count of operations: on a fast CPU `sum(range(1500))` took 10 µs, so 400
# steps were 4 ms a turn of the loop and six hogs never made a beat 100 ms late.
STEP = 0.0001


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:  # CPU time, so starvation stretches it but cannot shorten it
        sum(range(200))


async def short_steps(done: Callable[[], bool]) -> None:
    while not done():
        burn(STEP)
        await asyncio.sleep(0)


async def main(mode: str, seconds: float, incidents: int = 0) -> dict[str, object]:
    detector = BlockingDetector(threshold=0.1)
    detector.start()
    await asyncio.sleep(0.2)
    started = time.monotonic()
    if mode == "callbacks":
        least, most = started + seconds, started + 10 * seconds

        def done() -> bool:
            now = time.monotonic()
            return now >= most or (now >= least and detector.starved >= incidents)

        await asyncio.gather(*(short_steps(done) for _ in range(400)))
    else:
        burn(seconds)
    wall = time.monotonic() - started
    await asyncio.sleep(0.2)
    detector.stop()
    return {
        "wall": wall,
        "reports": [{"location": r.location, "function": r.function, "late_ms": r.late_ms} for r in detector.reports],
        "starved": detector.starved,
        "starved_cpu": REGISTRY.get_sample_value("panorama_event_loop_starved_total", {"reason": "cpu"}) or 0.0,
        "starved_callbacks": REGISTRY.get_sample_value("panorama_event_loop_starved_total", {"reason": "callbacks"})
        or 0.0,
        "cpu_wait": REGISTRY.get_sample_value("panorama_event_loop_cpu_wait_seconds_total") or 0.0,
    }


if __name__ == "__main__":
    sys.stdin.readline()  # the parent pins this process to its core first, then says go
    incidents = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    print(json.dumps(asyncio.run(main(sys.argv[1], float(sys.argv[2]), incidents))), flush=True)
