"""What the operator asks of an actuator: few methods, each one idempotent."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class NodePoolState:
    name: str
    size: int
    min_size: int
    max_size: int
    allocatable: dict[str, float]  # per node, by Kubernetes resource name


@runtime_checkable
class NodePoolProvider(Protocol):
    """Karpenter-style: the operator decides sizes, the provider only applies them."""

    def describe(self, pool: str) -> NodePoolState: ...

    def resize(self, pool: str, size: int) -> NodePoolState: ...
