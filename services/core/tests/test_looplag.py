import asyncio
import time

from panorama.core.looplag import LoopLagMonitor, percentile


async def test_blocking_the_loop_for_200ms_reports_about_200ms_of_lag() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # noqa: ASYNC251 - the point of the test is to block the loop
    await asyncio.sleep(0.05)
    await monitor.stop()
    stats = monitor.stats()
    assert 0.17 <= stats.max <= 0.4, stats


async def test_an_idle_loop_reports_little_lag() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    monitor.start()
    await asyncio.sleep(0.2)
    await monitor.stop()
    stats = monitor.stats()
    assert stats.samples >= 5
    assert stats.p99 < 0.1, stats


def test_percentile_uses_nearest_rank() -> None:
    assert percentile([], 99) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
