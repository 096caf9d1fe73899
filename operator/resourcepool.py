"""ResourcePool: the Kopf handlers (an index of pools, and waking the cycle when a spec
changes) and the pool's decide step, which turns the cycle's figures into its status.

The pool's status says what its nodes offer (capacity), what its member pods were
promised (requested) and use (used, from Prometheus), what they will need (forecast, at
the strategy's quantile over its horizon), the pressure on the largest of these, when the
trend runs the pool out (capacityPlan), and how good the forecasts have been lately.

Its one action is opt-in (`pressureActions.evictAtEmergency`): at Emergency, a round of
evictions of its lowest-priority pods (planner.evictions chooses them), recorded in
status.lastEvictions before the cycle asks the Eviction API for them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

import kopf
import numpy as np

from quartermaster.operator.accounting import PodRecord, PoolSummary, threshold_for
from quartermaster.operator.conditions import (as_event, changed, restart_unreadable, rfc3339, seconds_since,
                                               set_condition)
from quartermaster.operator.forecast_tracking import Accuracy
from quartermaster.operator import models
from quartermaster.operator.models import GROUP, VERSION, PressureActions, ResourcePool, ResourcePoolSpec
from quartermaster.operator.observe import CustomObject, custom_object
from quartermaster.operator.quantities import format_quantity, format_resources, to_float
from quartermaster.operator.wake import cycle_wanted, spec_not_yet_observed
from quartermaster.operator.workloads import WorkloadKey
from quartermaster.planner import pools as decisions
from quartermaster.planner.evictions import DECIDED, Candidate, EvictionPlan, ResourceLoad, plan_evictions
from quartermaster.providers.evictions import EVICTED, FAILED, REFUSED, PodEvictions, outcome_of

PLURAL = ResourcePool.plural
USAGE_RESOURCES = ("cpu", "memory")


# ---- Kopf: the index the cycle reads, and its wake-up --------------------------------

@kopf.index(GROUP, VERSION, PLURAL)
def pool_index(name, body, **_):
    return {name: custom_object(body)}


@kopf.on.event(GROUP, VERSION, PLURAL, when=spec_not_yet_observed)
async def on_pool_event(**_):
    await cycle_wanted.notify()


# ---- decide ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ResourceFigures:
    """One resource of one pool, as observed and forecast this cycle."""

    used: Optional[float]  # NaN-free, or None when no member has a fresh sample
    history: np.ndarray  # [T] the pool's aggregate usage (NaN gaps)
    forecast: Optional[np.ndarray]  # [H] the strategy's quantile, or None (no forecast this cycle)
    tier: str = ""
    model: str = ""
    confidence: Optional[float] = None
    accuracy: Accuracy = Accuracy(None, None, 0)


@dataclass(frozen=True)
class UsageFigures:
    """What the cycle knows of a pool's usage; None fields when metrics are unavailable."""

    resources: Mapping[str, ResourceFigures]
    timestamps: np.ndarray  # [T] the histories' grid
    step_seconds: int
    metrics_time: float  # the grid time `used` is from
    missing: tuple[str, ...] = ()  # member workloads with no fresh sample
    # each member workload's usage now over its pods (pressure evictions' use of a pod)
    used_per_pod: Mapping[WorkloadKey, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolDecision:
    status: dict
    events: list[tuple[str, str, bool]]  # (reason, message, warning)
    action: Optional[PodEvictions] = None  # pressure evictions, recorded in status.lastEvictions


def parse_spec(pool: CustomObject) -> ResourcePoolSpec | str:
    """The parsed spec, or the message saying what is wrong with it."""
    return models.parse_spec(ResourcePoolSpec, pool.spec)


def decide(pool: CustomObject, spec: ResourcePoolSpec | str, summary: Optional[PoolSummary],
           workloads: int, usage: Optional[UsageFigures], metrics_problem: Optional[tuple[str, str]],
           previous: Mapping, now: float) -> PoolDecision:
    """The pool's new status and the Events its changes call for.

    `usage` None: no figures this cycle (metrics unavailable); `metrics_problem` is then
    (reason, message), and the status keeps its last good figures (a merge patch leaves
    the fields it does not name), with pressure on those and on requests.
    """
    before = list(previous.get("conditions") or [])
    generation = pool.generation
    if isinstance(spec, str):
        conditions = set_condition(before, "Ready", False, "InvalidSpec", spec, generation)
        status = {"observedGeneration": generation, "conditions": conditions}
        return PoolDecision(status, _transitions(before, conditions, status))
    params = decisions.strategy_parameters(spec.strategy.value, _coverage(usage))
    status = {
        "observedGeneration": generation,
        "capacity": format_resources(summary.capacity),
        "requested": format_resources(summary.requested),
        "free": format_resources(summary.free),
        "nodes": summary.nodes,
        "members": summary.members,
        "workloads": workloads,
    }
    if usage is not None:
        status.update(_usage_status(usage, summary, params, now))
    used, forecast = _figures(status if usage is not None else previous)
    pressure, loads = {}, {}
    for resource, capacity in summary.capacity.items():
        threshold = threshold_for(spec.pressure_thresholds, resource)
        decision = decisions.pressure(capacity, summary.requested[resource], used.get(resource),
                                      forecast.get(resource), params.buffer,
                                      threshold.warning, threshold.critical, threshold.emergency)
        if decision is not None:
            pressure[resource] = decision
            loads[resource] = ResourceLoad(capacity, summary.requested[resource], used.get(resource),
                                           forecast.get(resource), params.buffer, threshold.critical,
                                           threshold.emergency)
    status["pressure"] = {r: d.level for r, d in pressure.items()}

    conditions = before
    if summary.nodes == 0 and spec.fixed_capacity is None:
        conditions = set_condition(conditions, "Ready", False, "NoNodesSelected",
                                   "no schedulable node matches the pool's node selector", generation)
    else:
        conditions = set_condition(conditions, "Ready", True, "Reconciled",
                                   f"{summary.nodes} nodes, {summary.members} member pods", generation)
    reason, message, available = _metrics_condition(usage, metrics_problem, workloads)
    conditions = set_condition(conditions, "MetricsAvailable", available, reason, message, generation)
    # a copy, written back when its time was unreadable
    last_evictions = dict(previous.get("lastEvictions") or {})
    unreadable = restart_unreadable(last_evictions, "time", "lastEvictions.time", now,
                                    "the next round of evictions waits pressureActions.cooldownSeconds")
    if unreadable:
        status["lastEvictions"] = last_evictions
        previous = {**previous, "lastEvictions": last_evictions}
    relief = _relief(spec.pressure_actions, {r: loads[r] for r in spec.pressure_actions.resources if r in loads},
                     summary.member_pods, usage, metrics_problem, previous, now)
    conditions = [c for c in conditions if c["type"] != "Evicting"]
    if relief is not None:
        reason, message, active = relief.condition
        conditions = set_condition(conditions, "Evicting", active, reason, message, generation)
    action = None
    if relief is not None and relief.record is not None:
        status["lastEvictions"] = relief.record
        action = PodEvictions(relief.pods)
    status["conditions"] = conditions
    events = _transitions(before, conditions, status) + unreadable
    events += _pressure_changes(previous.get("pressure") or {}, pressure, spec.strategy.value, params)
    return PoolDecision(status, events, action)


# ---- pressure evictions ------------------------------------------------------------------

# Owners whose pods are never evicted: "Pod", a pod without a controller, which nothing
# would recreate (its work would be lost, not moved); a DaemonSet's pod, which comes back on
# the same node; "Node", a mirror pod of a kubelet's static pod, which the API cannot evict.
NEVER_EVICTED_OWNERS = ("Pod", "DaemonSet", "Node")


@dataclass(frozen=True)
class Relief:
    """The Evicting condition (reason, message, status), and a round's record and pods if one is due."""

    condition: tuple[str, str, bool]
    record: Optional[dict] = None  # status.lastEvictions
    pods: tuple[tuple[str, str, str], ...] = ()  # (namespace, name, uid) to evict, in order


def _relief(actions: PressureActions, loads: Mapping[str, ResourceLoad], members: tuple[PodRecord, ...],
            usage: Optional[UsageFigures], metrics_problem: Optional[tuple[str, str]], previous: Mapping,
            now: float) -> Optional[Relief]:
    """None while evictAtEmergency is off; else whether a round of evictions is due, and
    which pods (planner.evictions decides). A round acts only on this cycle's fresh usage of
    every member, and only a cooldown after the last one (recorded in status, so a restart
    waits too)."""
    if not actions.evict_at_emergency:
        return None
    emergency = sorted(r for r, load in loads.items() if load.decision().level == "Emergency")
    if not emergency:
        return Relief(("NoEmergency", f"no resource of {', '.join(actions.resources)} at Emergency", False))
    at = ", ".join(f"{r} at Emergency ({loads[r].decision().fraction:.0%} of capacity)" for r in emergency)
    stale = _not_fresh(usage, metrics_problem)
    if stale is not None:
        return Relief(("MetricsNotFresh", f"{at}, but {stale}: no pod is evicted on stale figures", False))
    last = previous.get("lastEvictions") or {}
    since = seconds_since(last.get("time"), now)
    if since is not None and since < actions.cooldown_seconds:
        return Relief(("EvictionCooldown", f"{at}; the last round of evictions was {since:.0f}s ago, the next "
                                           f"is due in {actions.cooldown_seconds - since:.0f}s", True))
    refused = {e["pod"] for e in last.get("pods") or () if e.get("outcome") == REFUSED}
    pods = {f"{p.namespace}/{p.name}": p for p in members
            if p.node is not None and not p.deleting and p.priority < actions.evict_below_priority
            and p.owner is not None and p.owner.kind not in NEVER_EVICTED_OWNERS}
    plan = plan_evictions(loads, [Candidate(key, p.priority, p.requests, usage.used_per_pod.get(p.owner, {}),
                                            key in refused) for key, p in sorted(pods.items())],
                          actions.max_evictions_per_round)
    if not plan.evictions:
        return Relief(("NoCandidates", f"{at}, but no member pod may be evicted for it: none of priority below "
                                       f"{actions.evict_below_priority} is on a node, recreated by a controller "
                                       f"(not a DaemonSet) and uses it", False))
    record = {"time": rfc3339(now), "pods": [
        {"pod": e.pod, "priority": e.priority, "resource": e.resource, "use": _amount(e.resource, e.use),
         **({"priorityClassName": pods[e.pod].priority_class_name} if pods[e.pod].priority_class_name else {}),
         "outcome": DECIDED} for e in plan.evictions]}
    return Relief(("PodsEvicted", f"{at}: {_round_message(plan, actions)}", True), record,
                  tuple((pods[e.pod].namespace, pods[e.pod].name, pods[e.pod].uid) for e in plan.evictions))


def _not_fresh(usage: Optional[UsageFigures], problem: Optional[tuple[str, str]]) -> Optional[str]:
    """Why this cycle's usage of the pool's members is not all fresh, or None when it is."""
    if problem is not None:
        return f"metrics are unavailable ({problem[1]})"
    if usage is None:
        return "no usage figures this cycle"
    if usage.missing:
        return (f"{len(usage.missing)} member workloads have no fresh usage sample "
                f"(e.g. {usage.missing[0]})")
    stale = [r for r in USAGE_RESOURCES if r in usage.resources and usage.resources[r].used is None]
    return f"no fresh {', '.join(stale)} usage" if stale else None


def _round_message(plan: EvictionPlan, actions: PressureActions) -> str:
    evicting = ", ".join(f"{e.pod} (priority {e.priority}, {e.resource})" for e in plan.evictions)
    after = ", ".join(f"{r} {plan.fractions[r]:.0%}" for r in plan.emergency)
    if plan.enough:
        outlook = f"then {after}, below Critical"
    else:
        outlook = (f"still {after} after them, at or above Critical (at most {actions.max_evictions_per_round} "
                   f"a round, of priority below {actions.evict_below_priority}); the next round in "
                   f"{actions.cooldown_seconds}s")
    return f"evicting {evicting}; {outlook}"


def evictions_made(pool: str, status: Mapping, outcomes: Mapping[str, object]) -> tuple[dict, list, list]:
    """The status once a round's evictions were asked for (each pod's outcome in
    lastEvictions), the pool's Events for them, and the Events for the evicted pods
    themselves as (namespace/name, reason, message, warning). `outcomes`: by namespace/name,
    EVICTED, REFUSED, GONE, or the ApiException the apiserver answered."""
    pods, events, pod_events = [], [], []
    for entry in status["lastEvictions"]["pods"]:
        answer = outcomes.get(entry["pod"])
        outcome = entry["outcome"] if answer is None else outcome_of(answer)
        who = (f"{entry['pod']} (priority {entry['priority']}"
               f"{', ' + entry['priorityClassName'] if entry.get('priorityClassName') else ''})")
        why = f"{entry['resource']} at Emergency, of which it held {entry['use']}"
        if outcome == EVICTED:
            events.append(("PodEvicted", f"evicted {who} for {why}", True))
            pod_events.append((entry["pod"], "PressureEviction",
                               f"evicted by Quartermaster: ResourcePool {pool}'s {entry['resource']} is at "
                               f"Emergency and this pod is among its lowest priority ({entry['priority']})", True))
        elif outcome == REFUSED:
            events.append(("EvictionRefused", f"not evicting {who} for {why}: its PodDisruptionBudget allows no "
                                              "disruption now; skipped this round", False))
        elif outcome == FAILED:
            events.append(("ActionFailed", f"evicting {who}: not done: {answer.status} {answer.reason}; "
                                           "the next round decides again", True))
        pods.append({**entry, "outcome": outcome})
    return {**status, "lastEvictions": {**status["lastEvictions"], "pods": pods}}, events, pod_events


def _coverage(usage: Optional[UsageFigures]) -> Optional[float]:
    """The lowest live coverage of the pool's upper forecasts (Adaptive's buffer follows it)."""
    if usage is None:
        return None
    known = [f.accuracy.coverage for f in usage.resources.values() if f.accuracy.coverage is not None]
    return min(known) if known else None



def _amount(resource: str, value: float) -> str:
    """Usage as a quantity: cpu to the millicore, memory to the MiB."""
    return format_quantity(resource, value if resource == "cpu" else round(value / 2**20) * 2**20)


def _usage_status(usage: UsageFigures, summary: PoolSummary, params: decisions.StrategyParameters,
                  now: float) -> dict:
    horizon = max(1, math.ceil(params.horizon_seconds / usage.step_seconds))
    used, forecast, details, plan, accuracy = {}, {}, [], [], []
    for resource, figures in usage.resources.items():
        if figures.used is not None:
            used[resource] = _amount(resource, figures.used)
        if figures.forecast is not None:
            window = figures.forecast[:horizon]
            peak = int(np.argmax(window))
            forecast[resource] = _amount(resource, float(window[peak]))
            details.append({
                "resource": resource, "quantile": params.quantile, "horizonSeconds": params.horizon_seconds,
                "peak": forecast[resource], "peakAt": rfc3339(usage.metrics_time + (peak + 1) * usage.step_seconds),
                "tier": figures.tier, "model": figures.model,
                **({"confidence": round(figures.confidence, 3)} if figures.confidence is not None else {}),
            })
        projection = decisions.capacity_projection(usage.timestamps, figures.history,
                                                   summary.capacity.get(resource, 0.0), now)
        plan.append({
            "resource": resource, "trendPerDay": _rounded(projection.trend_per_day),
            **_exhaustion(projection.exhausts_at, projection.days_left),
            "scenarios": [{"growthPerMonth": s.growth_per_month, **_exhaustion(s.exhausts_at, s.days_left)}
                          for s in projection.scenarios],
        })
        accuracy.append({
            "resource": resource, "samples": figures.accuracy.samples,
            **({"coverage": round(figures.accuracy.coverage, 3)} if figures.accuracy.coverage is not None else {}),
            **({"scaledError": round(figures.accuracy.scaled_error, 3)}
               if figures.accuracy.scaled_error is not None else {}),
        })
    return {"used": used, "forecast": forecast, "metricsTime": rfc3339(usage.metrics_time),
            "forecastDetails": details, "capacityPlan": plan, "forecastAccuracy": accuracy}


def _rounded(value: float) -> float:
    return float(f"{value:.4g}")


def _exhaustion(at: Optional[float], days: Optional[float]) -> dict:
    return {**({"exhaustsAt": rfc3339(at)} if at is not None else {}),
            **({"daysLeft": round(days, 1)} if days is not None else {})}


def _figures(status: Mapping) -> tuple[dict[str, float], dict[str, float]]:
    """used and forecast of a status (this cycle's or the last good one) as numbers."""
    def numbers(amounts):
        return {r: to_float(v) for r, v in (amounts or {}).items() if v is not None}
    return numbers(status.get("used")), numbers(status.get("forecast"))


def _metrics_condition(usage: Optional[UsageFigures], problem: Optional[tuple[str, str]],
                       workloads: int) -> tuple[str, str, bool]:
    if problem is not None:
        reason, message = problem
        return reason, message, False
    if usage is None or not workloads:
        return "NoMemberWorkloads", "no member workloads whose usage to read", True
    if len(usage.missing) == workloads:
        return "NoSamples", (f"no fresh usage sample for any of the {workloads} member workloads "
                             f"(e.g. {usage.missing[0]})"), False
    message = f"usage of {workloads - len(usage.missing)} workloads up to {rfc3339(usage.metrics_time)}"
    if usage.missing:
        message += f"; none yet for {len(usage.missing)}: {', '.join(usage.missing[:3])}"
    return "SamplesFresh", message, True


def _listing(amounts: Mapping[str, str]) -> str:
    return ", ".join(f"{resource} {amount}" for resource, amount in amounts.items())


def _transitions(before: list[dict], after: list[dict], status: Mapping) -> list:
    """An Event for each condition whose status or reason changed; a pool turning Ready
    says what it holds."""
    events = []
    for condition in changed(before, after):
        if condition["type"] == "Ready" and condition["status"] == "True":
            message = (f"pool ready with {status['nodes']} nodes and {status['members']} member pods: "
                       f"capacity {_listing(status['capacity'])}; requested {_listing(status['requested'])}")
            events.append(("Ready", message, False))
        elif condition["type"] == "MetricsAvailable" and condition["status"] == "True":
            events.append(("MetricsAvailable", condition["message"], False))
        elif condition["type"] == "Evicting" and condition["reason"] == "NoEmergency":
            events.append(("NoEmergency", condition["message"], False))  # the calm state: no warning
        else:
            events.append(as_event(condition))
    return events


def _pressure_changes(before: Mapping[str, str], after: Mapping[str, decisions.PressureDecision],
                      strategy: str, params: decisions.StrategyParameters) -> list:
    events = []
    for resource, decision in after.items():
        if before.get(resource, "Normal") == decision.level:
            continue
        basis = (f"the {params.quantile:g} forecast plus the {strategy} buffer of {params.buffer:.0%}"
                 if decision.basis == "forecast" else decision.basis)
        events.append(("PressureChanged",
                       f"{resource} pressure {before.get(resource, 'Normal')} → {decision.level}: "
                       f"{decision.fraction:.0%} of capacity, on {basis}",
                       decision.level in ("Critical", "Emergency")))
    return events
