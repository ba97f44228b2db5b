"""First come, first served for io's async DB connections, each wait bounded by the request's budget.

SQLAlchemy's async pool is not fair: a connection put back is taken by whichever request asks next,
and a waiter that lost the race to a newcomer queues again at the back (``asyncio.Queue.get`` after
``get_nowait``). Under a burst the average wait is short while some requests starve past the pool's
timeout and answer 503 (§8 of ``make bench``: 151-328 of them at concurrency 256). Here a FIFO
semaphore, sized to the pool (``pool_size + max_overflow``), sits in front of the checkout, so the
pool itself never has a waiter, and each request waits its turn for as long as its budget allows:
until its deadline less the time to run the query and answer (``ANSWER_RESERVE``). When even that
wait runs out, :class:`AdmissionTimeout` (503 with ``Retry-After``, never a hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from pydantic import BaseModel

# Kept for the statement itself and the relay back through the gateway: a request that is admitted
# this late still answers within its budget.
ANSWER_RESERVE = 0.5


class AdmissionTimeout(Exception):
    """No DB connection came free before the request's budget (less the answer's reserve) ran out."""


class AdmissionStatus(BaseModel):
    slots: int
    in_use: int
    waiting: int
    admitted: int
    refused: int
    longest_wait_s: float


class Admission:
    """``async with admission.slot(deadline):`` around one use of a pooled connection.

    ``deadline`` is ``time.monotonic()`` based, the request's end. asyncio's ``Semaphore`` is FIFO
    (since 3.11.1 a newcomer does not overtake a waiter, and a cancelled waiter passes its turn on).
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self._semaphore = asyncio.Semaphore(slots)
        self._in_use = 0
        self._waiting = 0
        self.admitted = 0
        self.refused = 0
        self.longest_wait_s = 0.0

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        wait_until = deadline - ANSWER_RESERVE
        start = time.monotonic()
        self._waiting += 1
        try:
            # A free slot is taken at once, even past the deadline: acquire() then does not yield.
            async with asyncio.timeout(max(0.0, wait_until - start)):
                await self._semaphore.acquire()
        except TimeoutError:
            self.refused += 1
            raise AdmissionTimeout(
                f"no database connection came free within the request's budget "
                f"(waited {time.monotonic() - start:.2f}s behind {self._waiting - 1} other request(s))"
            ) from None
        finally:
            self._waiting -= 1
        waited = time.monotonic() - start
        self.admitted += 1
        self.longest_wait_s = max(self.longest_wait_s, waited)
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1
            self._semaphore.release()

    def status(self) -> AdmissionStatus:
        return AdmissionStatus(
            slots=self.slots,
            in_use=self._in_use,
            waiting=self._waiting,
            admitted=self.admitted,
            refused=self.refused,
            longest_wait_s=round(self.longest_wait_s, 3),
        )
