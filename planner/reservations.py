"""Reservations: capacity held for a Quota's scope, always or in a weekly window of UTC time.

A window is a start and an end time of day (UTC) and the days of the week it starts on
(every day when none are given). An end at or before its start crosses midnight: 22:00 to
06:00 on a Friday runs from Friday 22:00 to Saturday 06:00. A window holds from its start
up to, not at, its end; being shorter than a day, one day's window ends before the next
day's begins.

What a reservation holds back while it is active: the Quota lends none of it to borrowers
(`planner.quotas.lend_idle`), and a SwapPlan takes none of it from the scope's workloads
(`floors`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

DAY = 86_400
# 1970-01-01, day 0 of the epoch, was a Thursday: weekday 3 with Monday as 0
_EPOCH_WEEKDAY = 3


@dataclass(frozen=True)
class Window:
    """A weekly window: minutes after midnight UTC, and the weekdays it starts on (0 Monday)."""

    start: int
    end: int
    days: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if not (0 <= self.start < 1440 and 0 <= self.end < 1440) or self.start == self.end:
            raise ValueError("a window starts and ends at different minutes of a day (0 to 1439)")
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("a window starts on one or more weekdays, 0 (Monday) to 6 (Sunday)")

    def around(self, t: float) -> tuple[bool, float, float]:
        """(active at t, start, end) of the occurrence holding t, or else of the next one."""
        midnight = t // DAY * DAY
        for day in range(-1, 8):
            begins = midnight + day * DAY
            if (begins // DAY + _EPOCH_WEEKDAY) % 7 not in self.days:
                continue
            start = begins + self.start * 60
            end = begins + self.end * 60 + (DAY if self.end <= self.start else 0)
            if t < end:
                return start <= t, start, end
        raise AssertionError("a week always holds an occurrence")  # days is never empty


@dataclass(frozen=True)
class Reservation:
    """Amounts held (base units by resource); `window` None: always."""

    amounts: Mapping[str, float]
    window: Optional[Window] = None

    def active(self, t: float) -> bool:
        return self.window is None or self.window.around(t)[0]


@dataclass(frozen=True)
class ReservedScope:
    """What a Quota's active reservations hold for the namespaces of its scope (base units
    by resource)."""

    namespaces: frozenset[str]
    amounts: Mapping[str, float]


def held(reservations: Sequence[Reservation], t: float) -> dict[str, float]:
    """What the reservations active at t hold together, per resource."""
    total: dict[str, float] = {}
    for reservation in reservations:
        if reservation.active(t):
            for resource, amount in reservation.amounts.items():
                total[resource] = total.get(resource, 0.0) + amount
    return total


def floors(current: np.ndarray, groups: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each instance's floor (n x r) so that a group of instances (a boolean mask over the
    n rows) keeps what is reserved for it (r amounts), as far as it holds that much now:
    each member keeps its part of min(reserved, what the group holds), in proportion to
    what it holds. A floor is never above what an instance holds, so it alone never makes
    a plan infeasible; an instance in several groups takes the highest floor."""
    found = np.zeros_like(current, dtype=float)
    for members, reserved in groups:
        holds = current[members].sum(axis=0)
        kept = np.divide(np.minimum(reserved, holds), holds, out=np.zeros_like(holds, dtype=float), where=holds > 0)
        found[members] = np.maximum(found[members], current[members] * kept)
    return found
