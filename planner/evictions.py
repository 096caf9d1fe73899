"""Pressure relief: which of a ResourcePool's pods to evict when a resource is at Emergency.

Pure code, no I/O: the operator passes each resource's figures as the pool's pressure
decision saw them (`ResourceLoad`), and the pods it may evict (`Candidate`: it has left
out already the pods that must never be evicted, see docs/resourcepool.md).

The model, for one pool and one round:

1. A resource acts when its pressure is at Emergency: its demand, the largest of
   requested, used and forecast x (1 + buffer) (``planner.pools.pressure``), is at or
   above its emergency fraction of capacity. No such resource: no eviction.
2. Evicting a pod takes its claim off the pool: its requests off ``requested``, its usage
   off ``used``, and off the forecast the share of it its usage is of ``used`` (the
   forecast is of the members' aggregate usage, so it is taken to shrink with it). Its
   controller's replacement is a new pod, which the scheduler places behind pending pods
   of higher priority.
3. Greedy, one pod at a time: while a resource that was at Emergency is still at or
   above its critical fraction, and fewer than ``limit`` pods are chosen, the resource
   whose fraction is highest is relieved next (the first by name on a tie); the pod
   chosen for it is the one of lowest priority, then (within a priority) one whose
   eviction a PodDisruptionBudget did not refuse in the last round, then the largest
   use of that resource, then the first by name. A pod's use of a resource is its share
   of the figure that sets the resource's demand now: its request while requests set it,
   its usage while usage or the forecast does. A pod that uses none of it relieves
   nothing and is passed over; when no pod left uses it, the next resource is relieved.
4. The round reports the fraction of each acting resource after its evictions, and
   whether that is below critical: a round that cannot get there (too few candidates,
   or the limit) still evicts what it chose, and the next round, after the cooldown,
   starts afresh from what the cluster then shows.

Evicting below critical, not below emergency, leaves a margin, so that the pool does not
return to Emergency at the next small rise and evict again.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from quartermaster.planner.pools import PressureDecision, pressure

# What became of a chosen eviction: recorded before it is asked for (Decided), then the
# Eviction API's answer (providers.evictions). Status keeps these words.
EvictionOutcome = Literal["Decided", "Evicted", "Refused", "Gone", "Failed"]
DECIDED, EVICTED, REFUSED, GONE, FAILED = get_args(EvictionOutcome)


@dataclass(frozen=True)
class ResourceLoad:
    """One resource of the pool, as its pressure was decided (cpu in cores, memory in bytes)."""

    capacity: float
    requested: float
    used: float | None  # None: not read (or a resource with no usage, such as pods)
    forecast: float | None  # the forecast peak before the strategy's buffer; None: none yet
    buffer: float
    critical: float
    emergency: float

    def decision(self) -> PressureDecision | None:
        # the warning threshold plays no part in relief: critical stands in for it
        return pressure(self.capacity, self.requested, self.used, self.forecast, self.buffer,
                        self.critical, self.critical, self.emergency)

    def without(self, requested: float, used: float) -> ResourceLoad:
        """The load once a pod holding `requested` and using `used` of it has left."""
        remaining = None if self.used is None else max(0.0, self.used - used)
        forecast = self.forecast
        if forecast is not None and self.used:  # the forecast shrinks with the usage it is made of
            forecast *= remaining / self.used
        return ResourceLoad(self.capacity, max(0.0, self.requested - requested), remaining, forecast,
                            self.buffer, self.critical, self.emergency)


@dataclass(frozen=True)
class Candidate:
    """A pod the operator may evict."""

    pod: str  # namespace/name
    priority: int  # its spec.priority
    requests: Mapping[str, float]
    used: Mapping[str, float]  # its usage now, per resource; a resource missing counts as 0
    refused_last_round: bool = False  # a PodDisruptionBudget refused its eviction in the last round


@dataclass(frozen=True)
class Eviction:
    pod: str
    priority: int
    resource: str  # the resource it was chosen to relieve
    use: float  # its share of the figure that set that resource's demand


@dataclass(frozen=True)
class EvictionPlan:
    evictions: tuple[Eviction, ...]
    emergency: tuple[str, ...]  # the resources at Emergency before the round, by name
    fractions: Mapping[str, float]  # each of those resources' fraction once the evictions are made
    enough: bool  # every one of them is then below its critical fraction


def plan_evictions(loads: Mapping[str, ResourceLoad], candidates: Sequence[Candidate],
                   limit: int) -> EvictionPlan:
    """The pods to evict this round (the model is in the module's docstring).

    ``loads``: the resources relief may act on, by name; ``limit`` >= 0: the most pods
    evicted in one round. Pods named twice count once (the first).
    """
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    loads = dict(loads)
    emergency = tuple(sorted(r for r, load in loads.items()
                             if (d := load.decision()) is not None and d.level == "Emergency"))
    remaining = {c.pod: c for c in reversed(candidates)}  # the first of a name wins
    chosen: list[Eviction] = []

    def pressing() -> list[tuple[float, str]]:
        fractions = [(loads[r].decision().fraction, r) for r in emergency]
        return [(f, r) for f, r in fractions if f >= loads[r].critical]

    while len(chosen) < limit:
        pick = _next_pick(loads, pressing(), remaining.values())
        if pick is None:
            break
        chosen.append(pick[1])
        del remaining[pick[0].pod]
        loads = {r: load.without(pick[0].requests.get(r, 0.0), pick[0].used.get(r, 0.0))
                 for r, load in loads.items()}
    fractions = {r: loads[r].decision().fraction for r in emergency}
    return EvictionPlan(tuple(chosen), emergency, fractions,
                        all(fractions[r] < loads[r].critical for r in emergency))


def _next_pick(loads: Mapping[str, ResourceLoad], pressing: list[tuple[float, str]],
               remaining) -> tuple[Candidate, Eviction] | None:
    """The next pod and why, for the most pressing resource some remaining pod uses."""
    for _, resource in sorted(pressing, key=lambda item: (-item[0], item[1])):
        basis = loads[resource].decision().basis

        def use(candidate: Candidate) -> float:
            return (candidate.requests if basis == "requested" else candidate.used).get(resource, 0.0)

        useful = [c for c in remaining if use(c) > 0]
        if useful:
            pick = min(useful, key=lambda c: (c.priority, c.refused_last_round, -use(c), c.pod))
            return pick, Eviction(pick.pod, pick.priority, resource, use(pick))
    return None
