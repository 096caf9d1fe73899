"""ResourcePool: the Kopf handlers (an index of pools, and waking the cycle when a spec
changes) and the pool's decide step, which turns the cycle's figures into its status.

The pool's status says what its nodes offer (capacity), what its member pods were
promised (requested) and use (used, from Prometheus), what they will need (forecast, at
the strategy's quantile over its horizon), the pressure on the largest of these, when the
trend runs the pool out (capacityPlan), and how good the forecasts have been lately.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import kopf
import numpy as np

from quartermaster.operator.accounting import PoolSummary, threshold_for
from quartermaster.operator.conditions import as_event, changed, rfc3339, set_condition
from quartermaster.operator.forecast_tracking import Accuracy
from quartermaster.operator import models
from quartermaster.operator.models import GROUP, VERSION, ResourcePool, ResourcePoolSpec
from quartermaster.operator.observe import CustomObject, custom_object
from quartermaster.operator.quantities import format_quantity, format_resources, to_float
from quartermaster.operator.wake import cycle_wanted, spec_not_yet_observed
from quartermaster.planner import pools as decisions

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


@dataclass(frozen=True)
class PoolDecision:
    status: dict
    events: list[tuple[str, str, bool]]  # (reason, message, warning)


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
    pressure = {}
    for resource, capacity in summary.capacity.items():
        threshold = threshold_for(spec.pressure_thresholds, resource)
        decision = decisions.pressure(capacity, summary.requested[resource], used.get(resource),
                                      forecast.get(resource), params.buffer,
                                      threshold.warning, threshold.critical, threshold.emergency)
        if decision is not None:
            pressure[resource] = decision
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
    status["conditions"] = conditions
    events = _transitions(before, conditions, status)
    events += _pressure_changes(previous.get("pressure") or {}, pressure, spec.strategy.value, params)
    return PoolDecision(status, events)


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
