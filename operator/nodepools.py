"""ScalingPolicy with `targetRef.kind: NodePool`: the decide step that sizes a provider's
node pool, and the figures it decides on.

`targetRef.name` names a ResourcePool with `providerNodePool`: that provider's pool is
sized for the ResourcePool's members, by `planner.nodepools.size_node_pool`: the forecast
peak of the members' usage over the horizon (Predictive only, and only when the forecast
is trusted), the pending pods the pool's nodes would take, and the pods it holds packed
afresh (so that a drained node's pods fit the rest); `minReplicas`/`maxReplicas` bound the
node count, `scaleDown.cooldownSeconds` is the scale-down stabilisation window, and the
pool strategy's buffer the headroom left on each node at the peak. The size is applied
absolutely through the provider (`providers.node_pools`), repeated each cycle until the
pool has it (a drain goes on from where a PodDisruptionBudget stopped it).

With `providerNodePool.instanceTypes`, the pool is sized in nodes of the cheapest of them
that fits the demand (`planner.nodepools.pool_instance_type`), and the provider launches
its new nodes of that type; with `spotPercentage`, that share of its new nodes is spot,
on-demand instead for `spotRetrySeconds` after spot capacity was refused (the provider's
InsufficientCapacity, or a failed launch it reports) or the pool's spot nodes were
interrupted (`SPOT_INTERRUPTION_TAINTS`) (`planner.nodepools.spot_share`). The latest such
refusal is kept in `status.lastSpotRefusal` with its own time, so that the wait runs from
the refusal however often it is read again, and the same after a restart. The price of
the chosen shape is in the reasoning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from quartermaster.operator.accounting import NODE_POOL_LABEL, NodeRecord, PodRecord
from quartermaster.operator.conditions import (
    as_event, changed, from_rfc3339, restart_unreadable, rfc3339, set_condition)
from quartermaster.operator.models import ResourcePoolSpec, ScalingMode, ScalingPolicySpec, UpdateMode
from quartermaster.operator.observe import CustomObject
from quartermaster.operator.scalingpolicy import CUSTOM_SIGNALS, PolicyDecision, Settings, budget_condition
from quartermaster.planner.budget import BudgetHold, held_size
from quartermaster.planner.nodepools import (
    NodePoolDemand, NodePoolMemory, NodePoolRules, NoFittingInstanceType, Offer, pool_instance_type, size_node_pool,
    spot_share)
from quartermaster.providers.interface import InsufficientCapacity, NodePool, ProviderError
from quartermaster.providers.node_pools import NodePoolObservation, NodePoolSize

# Taints that say a spot node is being reclaimed: the AWS Node Termination Handler's on a
# spot interruption notice, GKE's on a spot VM's preemption.
SPOT_INTERRUPTION_TAINTS = ("aws-node-termination-handler/spot-itn", "cloud.google.com/impending-node-termination")


@dataclass(frozen=True)
class NodePoolFigures:
    """The pool's nodes and pods now, and its members' forecast peak (None: no forecast)."""

    nodes: int  # schedulable nodes of the pool
    pending: tuple[Mapping[str, float], ...]
    placed: tuple[Mapping[str, float], ...]
    free: tuple[Mapping[str, float], ...]
    peak: Optional[Mapping[str, float]] = None
    peak_in_seconds: float = 0.0
    confidence: Optional[float] = None
    interrupted: tuple[str, ...] = ()  # the pool's nodes tainted as being reclaimed (spot interruptions)


@dataclass(frozen=True)
class ActResult:
    """How the provider took the last action applied: the Ready condition it makes,
    whether the same action is tried again (a drain goes on, a transient error is retried;
    a permanent error waits for another size or shape), and whether spot was refused."""

    action: NodePoolSize
    ready: bool
    reason: str
    message: str
    retry: bool = True
    spot_refused: str = ""  # the provider's InsufficientCapacity for an action asking for spot
    spot_refused_at: Optional[float] = None  # when it answered so (unix seconds)


def act_result(action: NodePoolSize, blocked: tuple[str, ...] = (), error: Optional[ProviderError] = None,
               retried: tuple[ProviderError, ...] = (), *, answered_at: float) -> ActResult:
    """`retried`: the transient errors of the tries before the last one (retry_transient's);
    `answered_at`: when the provider's last answer came."""
    where = f"{action.provider} node pool {action.pool}"
    tries = f" after {len(retried) + 1} tries ({', '.join(sorted({e.reason for e in retried}))} retried with " \
            "backoff)" if retried else ""
    if error is not None:
        then = "tried again next cycle" if error.transient else "not tried again until the size changes"
        refused = isinstance(error, InsufficientCapacity) and bool(action.spot_percentage)
        return ActResult(action, False, error.reason, f"{where}: {error}{tries}; {then}", error.transient,
                         f"spot capacity refused ({error})" if refused else "", answered_at if refused else None)
    if blocked:
        return ActResult(action, True, "DrainBlocked", f"{where}: {'; '.join(blocked)}")
    if retried:
        return ActResult(action, True, "ResizedAfterRetries", f"{action.describe()}, set{tries}")
    return ActResult(action, True, "Resizing", f"{where}: set to {action.size} nodes")


def pool_figures(pool: str, nodes: list[NodeRecord], pods: list[PodRecord], members: tuple[PodRecord, ...],
                 peak: Optional[Mapping[str, float]] = None, peak_in_seconds: float = 0.0,
                 confidence: Optional[float] = None) -> NodePoolFigures:
    """The figures of provider pool `pool` (by its nodes' label): the pending pods among the
    ResourcePool's `members`, the pods on any of its nodes (draining ones too) and the room
    on each schedulable one, with the members' forecast `peak` (`forecast_peak`)."""
    mine = [n for n in nodes if n.labels.get(NODE_POOL_LABEL) == pool]
    names = {n.name for n in mine}
    on_node: dict[str, list[PodRecord]] = {}
    for pod in pods:
        if pod.node in names:
            on_node.setdefault(pod.node, []).append(pod)
    free = tuple({r: amount - sum(p.requests.get(r, 0.0) for p in on_node.get(n.name, ()))
                  for r, amount in n.allocatable.items()} for n in mine if n.schedulable)
    return NodePoolFigures(sum(n.schedulable for n in mine), tuple(p.requests for p in members if p.node is None),
                           tuple(p.requests for ps in on_node.values() for p in ps), free, peak, peak_in_seconds,
                           confidence, tuple(sorted(n.name for n in mine if set(n.taints) & set(SPOT_INTERRUPTION_TAINTS))))


def latest_spot_refusal(recorded: Mapping, pool: NodePool, last: Optional[ActResult], interrupted: tuple[str, ...],
                        now: float) -> Optional[tuple[float, str]]:
    """The latest refusal of spot capacity or interruption of the pool's spot nodes, (time,
    what), of: the one status records (`recorded`, status.lastSpotRefusal with a readable
    time, or empty), the provider's (it reports its latest until it launches again), the
    last resize's answer, and the pool's nodes tainted as reclaimed now. Each keeps its own
    time, so one read again, or after a restart, is not a new one."""
    refusals = []
    if recorded:
        refusals.append((from_rfc3339(recorded["time"]), recorded["cause"]))
    if pool.spot_refused_at is not None:
        refusals.append((pool.spot_refused_at, f"spot capacity refused ({pool.spot_refused})"))
    if last is not None and last.spot_refused_at is not None:
        refusals.append((last.spot_refused_at, last.spot_refused))
    if interrupted:
        refusals.append((now, f"{len(interrupted)} spot nodes interrupted ({', '.join(interrupted)})"))
    return max(refusals, key=lambda refusal: refusal[0], default=None)


def forecast_peak(forecasts: Mapping[str, np.ndarray], step_seconds: int,
                  horizon_seconds: int) -> tuple[Optional[dict[str, float]], float]:
    """Each resource's peak over the horizon (None when no resource has a forecast), and how
    far ahead the latest of them comes."""
    steps = max(1, math.ceil(horizon_seconds / step_seconds))
    peak, when = {}, 0
    for resource, values in forecasts.items():
        part = values[:steps]
        if np.isfinite(part).any():
            index = int(np.nanargmax(part))
            peak[resource], when = float(part[index]), max(when, index + 1)
    return peak or None, when * step_seconds


def decide(policy: CustomObject, spec: ScalingPolicySpec, pool: Optional[tuple[str, ResourcePoolSpec]],
           figures: Optional[NodePoolFigures], observation: Optional[NodePoolObservation], settings: Settings,
           problem: Optional[tuple[str, str]], last: Optional[ActResult], memory: Optional[NodePoolMemory],
           previous: Mapping, now: float, hold: Optional[BudgetHold] = None) -> PolicyDecision:
    """The pool's size, the status saying why, and the provider action that sets it.
    `pool` is the named ResourcePool (name, spec) when it exists and parses (`figures` are
    its provider pool's, None without one); `problem` a
    metrics failure (no forecast then, and no shrinking on it); `last` how the provider
    took the last action applied; `memory` what the last decision passed on; `hold` the Quota with `budget.action: Block` over the
    policy's namespace (over its budget, the pool does not grow)."""
    before = list(previous.get("conditions") or [])
    generation = policy.generation
    # what the decision records however it ends, and the Events no condition's transition files
    status_kept: dict = {}
    notices: list[tuple[str, str, bool]] = []

    def finish(conditions, extra=None, action=None, window=memory):
        conditions = budget_condition(conditions, hold, generation)
        status = {"observedGeneration": generation, **status_kept, **(extra or {}), "conditions": conditions}
        events = [as_event(c) for c in changed(before, conditions)] + notices
        last = (previous.get("lastAction") or {}).get("action")
        if action is not None and action.describe() != last:
            # a repeated size (a drain still going, nodes still coming) is the action already recorded
            status["lastAction"] = {"action": action.describe(), "time": rfc3339(now)}
            events.append((action.event_reason, status["lastAction"]["action"], False))
        return PolicyDecision(status, events, action, window)

    def not_ready(reason: str, message: str):
        return finish(set_condition(before, "Ready", False, reason, message, generation))

    custom = sorted({s.type for s in spec.signals if s.type in CUSTOM_SIGNALS})
    if custom:
        return not_ready("UnsupportedSignal", f"a NodePool policy sizes nodes for cpu and memory, and a "
                                              f"{' or '.join(custom)} signal has no node resource: use cpu and memory")
    name = spec.target_ref.name
    if pool is None:
        return not_ready("PoolNotFound", f"no valid ResourcePool {name}: a NodePool policy names a ResourcePool "
                                         f"with providerNodePool")
    provider_pool = pool[1].provider_node_pool
    if provider_pool is None:
        return not_ready("NotANodePool", f"ResourcePool {name} has no providerNodePool to size")
    if observation is None or observation.error is not None:
        error = observation.error if observation is not None else None
        return not_ready(error.reason if error else "NotReadYet",
                         f"{provider_pool.provider} node pool {provider_pool.name}: "
                         + (f"{error}; tried again next cycle" if error else "not described yet"))
    conditions = before
    if spec.mode is ScalingMode.PREDICTIVE:
        conditions = set_condition(before, "MetricsAvailable", problem is None, *(
            problem or ("SamplesFresh", "the pool's forecast is read")), generation)
    state = observation.pool
    where = f"{provider_pool.provider} node pool {provider_pool.name}"
    forecast = figures.peak if spec.mode is ScalingMode.PREDICTIVE and problem is None else None
    trusted = forecast is not None and (figures.confidence or 0.0) >= spec.confidence_threshold
    demand = NodePoolDemand(forecast if trusted else {}, settings.parameters.quantile, figures.peak_in_seconds,
                            figures.pending, figures.placed, figures.free)
    rules = NodePoolRules(spec.min_replicas, spec.max_replicas, headroom=settings.parameters.buffer,
                          stabilisation_seconds=settings.parameters.scale_down_delay_seconds)
    spot = None
    if provider_pool.spot_percentage is not None:
        recorded = dict(previous.get("lastSpotRefusal") or {})
        notices += restart_unreadable(recorded, "time", "lastSpotRefusal.time", now,
                                      "new nodes are on-demand for spotRetrySeconds")
        refusal = latest_spot_refusal(recorded, state, last, figures.interrupted, now)
        if refusal is not None:
            status_kept["lastSpotRefusal"] = {"time": rfc3339(refusal[0]), "cause": refusal[1]}
        spot = spot_share(provider_pool.spot_percentage, refusal, provider_pool.spot_retry_seconds, now,
                          state.fixed_spot_share)
        until = f" (at {rfc3339(spot.retry_at)})" if spot.retry_at is not None else ""
        conditions = set_condition(conditions, "Spot", not spot.falling_back,
                                   "SpotAtTarget" if not spot.falling_back else
                                   "SpotFallbackUnsupported" if state.fixed_spot_share else "SpotFallback",
                                   f"{where}: {spot.message}{until}", generation)
    spot_percentage = spot.percentage if spot is not None else None
    share = (state.spot_percentage if spot_percentage is None else spot_percentage) / 100
    offered = {kind.name: kind for kind in observation.instance_types}
    kind, choice = offered[state.instance_type], None
    if provider_pool.instance_types:
        unknown = [name for name in provider_pool.instance_types if name not in offered]
        if unknown:
            return not_ready("UnknownInstanceType", f"{where}: the provider offers no instance type "
                                                    f"{', '.join(unknown)}; it offers {', '.join(sorted(offered))}")
        offers = [Offer(provider_pool.provider, offered[name]) for name in provider_pool.instance_types]
        try:
            choice = pool_instance_type(demand, offers, rules.headroom, share)
        except NoFittingInstanceType as error:
            return not_ready("NoFittingInstanceType", f"{where}: {error}: allow an instance type that has what "
                                                      f"the pool's pods ask for")
        kind = choice.offer.instance_type
    # a fresh operator holds the pool at its size for one cooldown before shrinking it
    recent = memory.recommendations if memory is not None else ((now, figures.nodes),)
    decision = size_node_pool(demand, kind.allocatable, figures.nodes, rules, now, recent)
    size, reasoning = decision.size, decision.reasoning
    if choice is not None:
        reasoning = f"cheapest fitting instance type {choice.reasoning}; {reasoning}"
    if forecast is not None and not trusted:
        reasoning = (f"forecast confidence {figures.confidence:.2f} below {spec.confidence_threshold:.2f}: "
                     f"sized on pods alone; {reasoning}")
    if spec.mode is ScalingMode.PREDICTIVE and problem is not None and size < figures.nodes:
        size, reasoning = figures.nodes, f"{reasoning}; held: no shrinking without metrics"
    # the pool in place counts the nodes it was set to that are still booting (a cloud
    # pool's instances join late): a hold never takes them away
    if hold is not None and hold.exceeded and size > (in_place := max(figures.nodes, state.desired_size)):
        size, reasoning = held_size(in_place, size), f"{reasoning}; held: Quota {hold.quota} is over its budget"
    shaped = choice is not None or spot is not None
    action = NodePoolSize(provider_pool.provider, provider_pool.name, size,
                          choice.offer.instance_type.name if choice is not None else None, spot_percentage,
                          round(size * kind.price(share), 4) if shaped else None)
    recommendation = {"replicas": size, **({"instanceType": action.instance_type} if action.instance_type else {}),
                      **({"spotPercentage": spot_percentage} if spot is not None else {}),
                      **({"pricePerHour": action.price_per_hour} if action.price_per_hour is not None else {})}
    extra = {"currentReplicas": figures.nodes, "settings": settings.status(),
             "recommendation": recommendation, "reasoning": reasoning}
    if figures.confidence is not None and spec.mode is ScalingMode.PREDICTIVE:
        extra["confidence"] = round(float(figures.confidence), 3)
    window = NodePoolMemory(decision.recommendations)
    at_size = (size == state.desired_size == state.size
               and action.instance_type in (None, state.instance_type)
               and spot_percentage in (None, state.spot_percentage))
    if spec.update_mode is UpdateMode.OFF or at_size:
        reason, message = ("RecommendOnly", f"updateMode Off: recommended {action.describe()}") if not at_size else (
            "Sized", f"{where} has {size} nodes")
        return finish(set_condition(conditions, "Ready", True, reason, message, generation), extra, window=window)
    if last is not None and last.action == action:
        return finish(set_condition(conditions, "Ready", last.ready, last.reason, last.message, generation),
                      extra, action if last.retry else None, window)
    return finish(set_condition(conditions, "Ready", True, "Resizing", f"{where}: {state.size} nodes → {size}",
                                generation), extra, action, window)
