"""The signal that wakes the control cycle: Kopf handlers notify it when the cluster or an
object changes; the cycle waits on it between runs (or for its resync period)."""
from __future__ import annotations

import asyncio


class ChangeSignal:
    """A counter that waiters compare against, so none misses a change while busy."""

    def __init__(self) -> None:
        self.generation = 0
        self._condition = asyncio.Condition()  # binds to the running loop on first use

    async def notify(self) -> None:
        async with self._condition:
            self.generation += 1
            self._condition.notify_all()

    async def wait_after(self, seen: int, timeout: float | None) -> None:
        """Return when the generation moves past `seen`, or after `timeout` seconds (None: no limit)."""
        async with self._condition:
            try:
                await asyncio.wait_for(self._condition.wait_for(lambda: self.generation != seen), timeout)
            except asyncio.TimeoutError:
                pass


cycle_wanted = ChangeSignal()
