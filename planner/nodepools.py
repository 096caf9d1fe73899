"""Node-pool sizing ahead of demand, and the cheapest instance type that fits a demand.

The model (`size_node_pool`), for one pool of nodes of one instance type:

1. Forecast: each node offers its allocatable less a headroom fraction, so that the pool
   still has room at the forecast peak. For every resource with demand, the pool needs
   ceil(peak / (allocatable × (1 − headroom))) nodes; the largest count wins, and its
   resource is the binding one.
2. Pending pods: first-fit decreasing (cpu, memory, gpu and the pod count) onto the room
   left on the nodes there are (`free`: a node just added has not taken its pods yet),
   then onto empty nodes: the current size plus those nodes. A pod larger than a whole
   node is reported and not counted: no number of such nodes would hold it.
3. The pods the pool holds (`placed`, and the pending ones) packed afresh onto empty
   nodes: the pool never shrinks below that, so that a drained node's pods fit the rest.
4. The recommendation is the largest of the three.
5. Scale-down stabilisation: below the current size, the pool is held at the highest
   recommendation of the last `stabilisation_seconds` (as the HPA does), so that a dip
   between two peaks does not drain nodes that the next peak needs again.
6. The pool's minimum and maximum bound the result.

The size is absolute: the same inputs give the same size, and a provider applies it as is.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from quartermaster.planner.scaling import amount, quantile_label
from quartermaster.providers.interface import InstanceType

# A count within this of a whole number is that number: 41 / 6.8 × 6.8 is not 6.0000001 nodes.
_EPSILON = 1e-9


@dataclass(frozen=True)
class NodePoolDemand:
    """What the pool's members will ask for: `peak` per resource (Kubernetes resource
    names; cpu in cores, memory in bytes) is the peak of the forecast of their requests at
    `quantile` over the horizon, reached `peak_in_seconds` from now; `pending` holds the
    requests of each pod Pending now, `placed` those of each pod on the pool's nodes
    (draining ones too), `free` the room left on each of its schedulable nodes."""

    peak: Mapping[str, float]
    quantile: float
    peak_in_seconds: float
    pending: Sequence[Mapping[str, float]] = ()
    placed: Sequence[Mapping[str, float]] = ()
    free: Sequence[Mapping[str, float]] = ()


@dataclass(frozen=True)
class NodePoolRules:
    min_size: int
    max_size: int
    headroom: float = 0.15  # share of each node's allocatable left free at the forecast peak
    stabilisation_seconds: float = 600.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(f"need 0 <= min_size <= max_size, got {self.min_size} and {self.max_size}")
        if not 0 <= self.headroom < 1:
            raise ValueError(f"headroom must be in [0, 1), got {self.headroom}")


@dataclass(frozen=True)
class NodePoolDecision:
    size: int
    reasoning: str
    binding: str | None  # the resource whose forecast set the size, None when none did
    unplaceable: tuple[int, ...] = ()  # indices of pending pods larger than a node
    # (time, recommendation) of this decision and those still inside the stabilisation
    # window, oldest first: the next decision's `recent`.
    recommendations: tuple[tuple[float, int], ...] = field(default=())


def nodes_for_peak(peak: Mapping[str, float], allocatable: Mapping[str, float],
                   headroom: float) -> tuple[int, str | None]:
    """Nodes needed for the peak at (1 − headroom) of each node's allocatable, and the
    resource that needs the most. A demanded resource that a node lacks needs infinitely
    many (math.inf)."""
    needed, binding = 0, None
    for resource, demand in sorted(peak.items()):
        if demand <= 0:
            continue
        usable = allocatable.get(resource, 0.0) * (1 - headroom)
        count = math.inf if usable <= 0 else math.ceil(demand / usable - _EPSILON)
        if count > needed:
            needed, binding = count, resource
    return needed, binding


def first_fit_decreasing(pods: Sequence[Mapping[str, float]], allocatable: Mapping[str, float],
                         free: Sequence[Mapping[str, float]] = ()) -> tuple[int, tuple[int, ...]]:
    """Empty nodes needed for `pods` packed first-fit decreasing (largest share of a node
    first) on every resource the node has, each pod also taking one of its `pods` slots,
    after the room `free` on nodes there are; and the indices of pods that fit no empty node."""
    def need(pod: Mapping[str, float]) -> dict[str, float]:
        return {**pod, "pods": 1.0} if "pods" in allocatable else dict(pod)

    def share(pod: Mapping[str, float]) -> float:
        return max((amount_ / allocatable[r] for r, amount_ in need(pod).items() if allocatable.get(r)),
                   default=0.0)

    bins = [{r: room.get(r, 0.0) for r in allocatable} for room in free]
    unplaceable = []
    for index in sorted(range(len(pods)), key=lambda i: share(pods[i]), reverse=True):
        wants = need(pods[index])
        if any(amount_ > allocatable.get(r, 0.0) for r, amount_ in wants.items()):
            unplaceable.append(index)
            continue
        node = next((n for n in bins if all(amount_ <= n.get(r, 0.0) + _EPSILON for r, amount_ in wants.items())),
                    None)
        if node is None:
            node = dict(allocatable)
            bins.append(node)
        for r, amount_ in wants.items():
            node[r] -= amount_
    return len(bins) - len(free), tuple(sorted(unplaceable))


def size_node_pool(demand: NodePoolDemand, allocatable: Mapping[str, float], current: int,
                   rules: NodePoolRules, now: float,
                   recent: Sequence[tuple[float, int]] = ()) -> NodePoolDecision:
    """The pool's size after `now` (unix seconds), by the model in the module's docstring.
    `allocatable` is one node's, `current` the nodes there are, `recent` the previous
    decisions' `recommendations`."""
    clauses = []
    forecast_nodes, binding = nodes_for_peak(demand.peak, allocatable, rules.headroom)
    if binding is not None:
        per_node = f"{amount(binding, allocatable.get(binding, 0.0))} a node at {1 - rules.headroom:.0%}"
        clauses.append(
            f"{binding} p{quantile_label(demand.quantile)} forecast peaks at {amount(binding, demand.peak[binding])}"
            f" in {round(demand.peak_in_seconds / 60)} min; {per_node} → {forecast_nodes} nodes")
    recommendation = 0 if math.isinf(forecast_nodes) else forecast_nodes
    if math.isinf(forecast_nodes):
        clauses[-1] = f"{binding} is forecast but a node has none: the forecast cannot set the size"
        binding = None

    extra, unplaceable = first_fit_decreasing(demand.pending, allocatable, demand.free)
    if extra:
        clauses.append(f"{len(demand.pending) - len(unplaceable)} pending pods pack onto {extra} more nodes"
                       f" → {current + extra}")
        recommendation = max(recommendation, current + extra)
    if unplaceable:
        clauses.append(f"{len(unplaceable)} pending pods are larger than a node and cannot be placed")
    held = [*demand.placed, *(pod for i, pod in enumerate(demand.pending) if i not in unplaceable)]
    # a repacking needing more nodes than run now is FFD's estimate, not a need: it only floors shrinking
    packed = min(first_fit_decreasing(held, allocatable)[0], current)
    if packed > recommendation:
        clauses.append(f"the {len(held)} pods held pack onto {packed} nodes → {packed}")
        recommendation = packed

    window = [(t, r) for t, r in recent if t > now - rules.stabilisation_seconds] + [(now, recommendation)]
    size = recommendation
    if recommendation < current:
        size = min(current, max(r for _, r in window))
        if size > recommendation:
            clauses.append(f"held at {size} by the highest recommendation of the last "
                           f"{rules.stabilisation_seconds / 60:.3g} min")
    if size < rules.min_size:
        size = rules.min_size
        clauses.append(f"raised to the minimum {size}")
    if size > rules.max_size:
        size = rules.max_size
        clauses.append(f"capped at the maximum {size}")
    clauses.append(f"now {current}")
    return NodePoolDecision(size, "; ".join(clauses), binding, unplaceable, tuple(window))


@dataclass(frozen=True)
class Offer:
    """An instance type as one provider sells it."""

    provider: str
    instance_type: InstanceType


@dataclass(frozen=True)
class PlacementChoice:
    offer: Offer
    nodes: int
    price_per_hour: float  # the whole pool's
    reasoning: str


# How a price per unit of a resource reads: per core, per GiB, per GPU.
_UNITS = {"cpu": ("core", 1.0), "memory": ("GiB", 2.0**30), "nvidia.com/gpu": ("GPU", 1.0)}


class NoFittingInstanceType(ValueError):
    pass


def cheapest_fitting(peak: Mapping[str, float], offers: Sequence[Offer], headroom: float,
                     pods: Sequence[Mapping[str, float]] = (),
                     spot_share: float = 0.0) -> PlacementChoice:
    """The offer whose nodes hold `peak` (as in `nodes_for_peak`, at least one node) for
    the least money per hour, `spot_share` of the nodes at the spot price (on-demand where
    a type has none), among the offers each of `pods` fits on. Ranking by the pool's price
    is ranking by the price per usable unit of each type's binding resource, with the
    rounding up to whole nodes included; ties go to fewer nodes, then by name. Raises
    NoFittingInstanceType when no offer fits."""
    priced = []
    for offer in offers:
        allocatable = offer.instance_type.allocatable
        if any(amount_ > allocatable.get(r, 0.0) for pod in pods for r, amount_ in pod.items()):
            continue
        nodes, binding = nodes_for_peak(peak, allocatable, headroom)
        if math.isinf(nodes):
            continue
        nodes = max(nodes, 1)
        priced.append((nodes * offer.instance_type.price(spot_share), nodes, offer.provider,
                       offer.instance_type.name, offer, binding))
    if not priced:
        raise NoFittingInstanceType(f"none of {len(offers)} instance types fits the demand"
                                    + (f" and holds each of its {len(pods)} pods" if pods else ""))
    priced.sort(key=lambda p: p[:4])
    price, nodes, _, _, offer, binding = priced[0]
    kind = offer.instance_type
    reasoning = f"{kind.name} on {offer.provider}: {nodes} nodes × ${kind.price(spot_share):.3f}/h = ${price:.2f}/h"
    if binding is not None:
        unit, size = _UNITS.get(binding, (binding, 1.0))
        usable = kind.allocatable[binding] * (1 - headroom) / size
        reasoning += f" (${kind.price(spot_share) / usable:.4f}/h per usable {unit})"
    if spot_share:
        reasoning += f" at {spot_share:.0%} spot"
    if len(priced) > 1:
        runner_up = priced[1]
        reasoning += f"; next {runner_up[3]} on {runner_up[2]} at ${runner_up[0]:.2f}/h"
    return PlacementChoice(offer, nodes, price, reasoning)


def pool_instance_type(demand: NodePoolDemand, offers: Sequence[Offer], headroom: float,
                       spot_share: float = 0.0) -> PlacementChoice:
    """The cheapest fitting of a pool's allowed instance types (`cheapest_fitting`) for its
    demand as a whole: per resource, the forecast peak, or the requests of the pods it
    holds and the pending ones together where they ask more; among the types that each of
    those pods fits on (a pod that fits none is left out, and reported as unplaceable when
    the pool is sized). The pool is then sized in nodes of that type (`size_node_pool`);
    nodes of another type it has keep their pods and their room."""
    # a pod no allowed type holds is not placed whichever is chosen: size_node_pool reports it
    pods = [pod for pod in (*demand.placed, *demand.pending)
            if any(all(a <= o.instance_type.allocatable.get(r, 0.0) for r, a in pod.items()) for o in offers)]
    resources = {*demand.peak, *(r for pod in pods for r in pod)}
    peak = {r: max(demand.peak.get(r, 0.0), sum(pod.get(r, 0.0) for pod in pods)) for r in resources}
    return cheapest_fitting(peak, offers, headroom, pods, spot_share)


@dataclass(frozen=True)
class NodePoolMemory:
    """What one decision on a pool passes to the next: the stabilisation window's (time,
    recommendation) pairs (`NodePoolDecision.recommendations`)."""

    recommendations: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class SpotDecision:
    percentage: int  # the spot share to ask the provider for now
    # spot was refused or interrupted less than the wait ago: new nodes are to be on-demand
    # (percentage 0, unless the provider keeps the pool's share as it is)
    falling_back: bool
    message: str
    retry_at: float | None = None  # when spot is asked for again, while falling back


def spot_share(target: int, refusal: tuple[float, str] | None, retry_seconds: float, now: float,
               fixed: str = "") -> SpotDecision:
    """The spot percentage to ask for, for a `target` percentage. `refusal` is the latest
    refusal of spot capacity or interruption of the pool's spot nodes, (when, what), None
    when there was none; `fixed` why the provider keeps the pool's spot share as it is,
    empty when it can change it.

    1. Less than `retry_seconds` after the refusal: 0 %, every new node on-demand. Where the
       share is fixed there is no on-demand to fall back to: the target still, and said.
    2. Otherwise the target. After a fallback this is trying spot again: whether spot
       capacity is back is only known by asking for it (Karpenter likewise forgets an
       unavailable offering after a few minutes), and a new refusal falls back again.

    The answer depends on the refusal's own time, not on when it was first seen: read
    again (a provider reports its latest refusal until it launches again), or by an
    operator that has restarted, it gives the same answer.
    """
    if target <= 0:
        return SpotDecision(0, False, "no spot share is asked for")
    if refusal is not None and now - refusal[0] < retry_seconds:
        when, cause = refusal
        retry_at = when + retry_seconds
        if fixed:
            return SpotDecision(target, True, f"{cause}: {fixed}, so its new nodes cannot fall back to on-demand: "
                                              f"they stay {target}% spot, and this is said until "
                                              f"{retry_seconds / 60:.3g} min after it", retry_at)
        return SpotDecision(0, True, f"{cause}: on-demand only, spot tried again {retry_seconds / 60:.3g} min "
                                     f"after it", retry_at)
    again = " again, after the fallback" if refusal is not None else ""
    return SpotDecision(target, False, f"{target}% of new nodes spot{again}")
