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
* Requests: each container's request of each resource no higher than the pod template's,
  and a request it has none of is not added (that would raise its charge from nothing). A
  running pod whose own request is below that (it lags the template) is not resized in
  place: it keeps its own, so no pod's charge goes up.
* Nodes: no more than the pool has now, counting the nodes it was set to that are still
  booting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


# Why a Quota with `budget.action: Block` holds its scope's policies, or does not: the
# reason of their ScalingAllowed condition. Only EXCEEDED holds.
EXCEEDED = "BudgetExceeded"
WITHIN = "WithinBudget"
SPEND_UNKNOWN = "SpendUnknown"  # its spend has never been read: no BudgetExceeded yet
CURRENCY_MISMATCH = "CurrencyMismatch"  # the budget is in another currency than the prices: not compared
NO_LIMIT = "NoBudgetLimit"  # neither budget.daily nor budget.monthly: nothing to be over


@dataclass(frozen=True)
class BudgetHold:
    """A Quota with `budget.action: Block` over a namespace, and where it stands now (from
    its spec and its BudgetExceeded condition as this cycle decided it)."""

    quota: str
    reason: str  # one of the reasons above
    message: str  # the BudgetExceeded condition's, "" without one

    @property
    def exceeded(self) -> bool:
        return self.reason == EXCEEDED


def held_replica_bounds(running: int, floor: int, ceiling: int) -> tuple[int, int]:
    """(minReplicas, maxReplicas) while blocked, for the target's `running` replicas now
    (its spec's) and the bounds (`floor`, `ceiling`) the policy would set."""
    top = max(1, min(ceiling, running))
    return max(1, min(floor, top)), top


def held_requests(in_place: Mapping[str, Mapping[str, float]],
                  proposed: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each container's proposed requests (by container name, then resource), none above
    its request in `in_place` (the pod template's); a resource it does not request there
    is left out. Not capped by the running pods: one pod whose request lags would pull
    every pod's down to it; such a pod is left out of an in-place resize instead."""
    return {name: {resource: min(amount, in_place[name][resource])
                   for resource, amount in requests.items() if resource in in_place.get(name, {})}
            for name, requests in proposed.items()}


def held_size(in_place: int, size: int) -> int:
    """A node pool's size while blocked: the one wanted, no more than the nodes in place
    (its joined nodes, or the size it was set to while some boot, whichever is more)."""
    return min(size, in_place)
