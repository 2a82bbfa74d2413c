"""How long an asyncio event loop went without running a ready task: a sampler that sleeps a
short period again and again and records how late it woke. What a scrape waiting on the loop
would have waited, at worst."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

__all__ = ["LoopLag"]


class LoopLag:
    """`async with LoopLag() as lag:` ... then `lag.worst` (seconds) and `lag.samples`."""

    def __init__(self, period: float = 0.002) -> None:
        self._period = period
        self.worst = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(self._period)
            self.worst = max(self.worst, time.perf_counter() - began - self._period)
            self.samples += 1

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._sample())
        await asyncio.sleep(0)  # let it take its first sample's start
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await asyncio.sleep(self._period * 2)  # a stall at the very end is measured too
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
