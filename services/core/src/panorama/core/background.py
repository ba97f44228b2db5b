"""A task that runs on the service's event loop for as long as the lifespan: started once, cancelled at the end."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


class LoopTask:
    """Subclasses define ``name`` and ``_run``; ``async with`` starts the task and cancels it on exit."""

    name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
