"""Priority classes: how much an instance's shortfall costs, and how risky moving it is."""
from __future__ import annotations

from enum import Enum


class PriorityClass(str, Enum):
    """A Quota's priority class."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def weight(self) -> float:
        """Shortfall multiplier: each class counts twice the one below it."""
        return _CLASS_WEIGHT[self]

    @property
    def risk_factor(self) -> float:
        """In (0, 1]: the class weight relative to critical's, so critical moves carry full risk."""
        return _CLASS_WEIGHT[self] / _CLASS_WEIGHT[PriorityClass.CRITICAL]


_CLASS_WEIGHT = {
    PriorityClass.CRITICAL: 8.0,
    PriorityClass.HIGH: 4.0,
    PriorityClass.NORMAL: 2.0,
    PriorityClass.LOW: 1.0,
}


def shortfall_weight(priority: PriorityClass | str, fair_share: float = 1.0) -> float:
    """The model's `weight_i`: the class weight scaled by the Quota's fair-share weight."""
    if not fair_share >= 0:  # also rejects NaN
        raise ValueError(f"fair-share weight must be a non-negative number, got {fair_share}")
    return PriorityClass(priority).weight * fair_share
