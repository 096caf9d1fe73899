"""Budget enforcement (a Quota's `budget.action: Block`): while the Quota is over its
budget, the ScalingPolicies in its scope may scale down but not up.

Pure code (plain values in, plain values out, no I/O). Each function takes what a scaler
would set and what is in place now, and returns what it may set while blocked: every
figure no higher than now, so that the blocked scaler never adds capacity (and never
has to take it away, which would be a disruption the budget did not ask for).

* Replicas through an HPA: the floor no higher than the replicas the target is set to
  now, and the ceiling lowered to them too, so that the HPA controller cannot add pods on its own
  either; never above the spec's maximum, never below 1 (the HPA API's minimum). The HPA
  may still scale the target down to the floor.
* Requests: each container's request of each resource no higher than it is now, in the
  pod template and in every running pod, and a request it has none of is not added (that
  would raise its charge from nothing).
* Nodes: no more than the pool has now, counting the nodes it was set to that are still
  booting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class BudgetHold:
    """A Quota with `budget.action: Block` over a namespace, and whether it is over its
    budget now (its BudgetExceeded condition as this cycle decided it)."""

    quota: str
    exceeded: bool
    message: str  # the BudgetExceeded condition's


def held_replica_bounds(running: int, floor: int, ceiling: int) -> tuple[int, int]:
    """(minReplicas, maxReplicas) while blocked, for the target's `running` replicas now
    (its spec's) and the bounds (`floor`, `ceiling`) the policy would set."""
    top = max(1, min(ceiling, running))
    return max(1, min(floor, top)), top


def held_requests(in_place: Sequence[Mapping[str, Mapping[str, float]]],
                  proposed: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each container's proposed requests (by container name, then resource), none above
    its request in any of `in_place` (the pod template's, each running pod's: a pod whose
    requests lag the template's must not be raised either); a resource that one of them
    does not request is left out."""
    return {name: {resource: min(amount, *(held[name][resource] for held in in_place))
                   for resource, amount in requests.items()
                   if in_place and all(resource in held.get(name, {}) for held in in_place)}
            for name, requests in proposed.items()}


def held_size(in_place: int, size: int) -> int:
    """A node pool's size while blocked: the one wanted, no more than the nodes in place
    (its joined nodes, or the size it was set to while some boot, whichever is more)."""
    return min(size, in_place)
