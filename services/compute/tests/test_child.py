import time

import pytest

from panorama.compute.child import CHUNK, DeadlineExceeded, compute_task, sum_below


@pytest.mark.parametrize("n", [0, 1, 2, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7, 1_000_003])
def test_sum_below_equals_sum_of_range(n: int) -> None:
    assert sum_below(n) == sum(range(n)) == n * (n - 1) // 2


def test_sum_below_stops_soon_after_its_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        sum_below(10**12, deadline=time.time() + 0.1)
    # A full run would take hours; stopping means within a few chunks of the deadline.
    assert time.monotonic() - started < 2.0


def test_task_started_after_its_deadline_does_no_work() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        compute_task(10**12, time.time() - 1, {})
    assert time.monotonic() - started < 0.5
