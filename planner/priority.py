"""Priority classes: how much an instance's shortfall costs, how risky moving it is, and
the Kubernetes priority its pods get from the scheduler."""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple


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
    def kubernetes_value(self) -> int:
        """The value of its Kubernetes PriorityClass, which the scheduler preempts by."""
        return _KUBERNETES_VALUE[self]

    @property
    def risk_factor(self) -> float:
        """In (0, 1]: the class weight relative to critical's, so critical moves carry full risk."""
        return _CLASS_WEIGHT[self] / _CLASS_WEIGHT[PriorityClass.CRITICAL]


# Far below the system classes (2,000,000,000 and up) and a power of ten apart, so a site's
# own classes fit between them; normal is 0, as a pod without a class is, and low is below
# it, so batch work yields even to pods nobody classified.
_KUBERNETES_VALUE = {
    PriorityClass.CRITICAL: 1_000_000,
    PriorityClass.HIGH: 100_000,
    PriorityClass.NORMAL: 0,
    PriorityClass.LOW: -100_000,
}

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


class Standing(NamedTuple):
    """What a namespace's Quota says of its workloads: their class and fair-share weight."""

    priority: PriorityClass
    fair_share: float


UNCLASSIFIED = Standing(PriorityClass.NORMAL, 1.0)  # a namespace in no Quota's scope
