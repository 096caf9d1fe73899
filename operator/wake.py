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


def spec_not_yet_observed(body, **_) -> bool:
    """A Kopf filter for our kinds' events: true unless the status already reflects the
    spec. The cycle's own status patches come back as watch events with
    `observedGeneration == generation` and must not wake it again; a spec change raises
    `generation`, so it passes; a new object has no status yet, so it passes too."""
    generation = body.get("metadata", {}).get("generation")
    return generation is None or (body.get("status") or {}).get("observedGeneration") != generation
