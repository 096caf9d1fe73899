"""SwapPlan: the Kopf handlers (an index of plans, waking the cycle on a spec change or an
approval) and the plan's decide step: plan the pool's swaps, wait for approval, execute
them one workload at a time, guard the result, and roll back when the guard fails.

The phases (DESIGN.md): Pending (no plan yet: no metrics, an infeasible problem) →
Planned (a plan with its planId; DryRun stays here, re-planned at most once per
`minIntervalSeconds`) → Approved (Manual: annotated `quartermaster.dev/approve=<planId>`
for this very plan; Auto: its risk is within `riskThreshold`) → Executing → Succeeded,
RolledBack or Failed; a finished plan is planned afresh after the minimum interval.

Execution is a live migration of requests: each step sets one workload's pod-template
requests to absolute values (the controller rolls its pods), donors before recipients so
that the pool is never overcommitted, the next step only once the last has rolled out.
The step, its requests before and after, and its state are in status before the change is
made, so a restarted operator carries on from the record: a step is applied again only
while its template does not hold the planned requests, and is never applied twice. After
the last step the rollback guard's query must keep returning series for `windowSeconds`;
if it returns none, cannot be read, or a workload does not roll out in time, the applied
steps are undone in reverse order (RolledBack).

A workload's priority class and fair-share weight are its namespace's Quota's (normal and
1 outside every Quota); its `quartermaster.dev/priority` annotation overrides the class.
SLA floors come from its annotations (`quartermaster.dev/min-cpu`,
`quartermaster.dev/min-memory`); no swap takes a workload below what it uses now; and the
workloads in the scope of a Quota whose reservation is active keep what it reserves, as far
as they hold it (`planner.reservations.floors`: each its part, in proportion to its requests).
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

import kopf
import numpy as np

from quartermaster.operator.conditions import (as_event, changed, restart_unreadable, rfc3339, seconds_since,
                                               set_condition)
from quartermaster.operator import models
from quartermaster.operator.models import GROUP, VERSION, ApprovalMode, SwapPhase, SwapPlan, SwapPlanSpec
from quartermaster.operator.observe import CustomObject, custom_object
from quartermaster.operator.quantities import format_quantity, request_precision, to_float
from quartermaster.operator.wake import cycle_wanted, spec_not_yet_observed
from quartermaster.operator.workloads import ContainerRequests, WorkloadKey, WorkloadTemplate
from quartermaster.planner import AntiThrash, InfeasiblePlanError, PriorityClass, SwapPlanRequest, plan_swaps, vertical
from quartermaster.planner.priority import UNCLASSIFIED, Standing
from quartermaster.planner.reservations import ReservedScope, floors as reservation_floors
from quartermaster.providers.requests import TemplateRequests

PLURAL = SwapPlan.plural
APPROVE_ANNOTATION = "quartermaster.dev/approve"
PRIORITY_ANNOTATION = "quartermaster.dev/priority"
FLOOR_ANNOTATIONS = {"cpu": "quartermaster.dev/min-cpu", "memory": "quartermaster.dev/min-memory"}
RESOURCES = ("cpu", "memory")
# The planner works in cores and GiB, so that objective figures add up across resources
# on a comparable scale (a byte-denominated memory term would drown the cpu one).
UNIT = {"cpu": 1.0, "memory": 2.0**30}
HISTORY = 20
TERMINAL = (SwapPhase.SUCCEEDED, SwapPhase.ROLLED_BACK, SwapPhase.FAILED)


# ---- Kopf: the index the cycle reads, and its wake-up --------------------------------

@kopf.index(GROUP, VERSION, PLURAL)
def swapplan_index(name, body, **_):
    return {name: custom_object(body)}


def approval_pending(body, **_) -> bool:
    """An approval annotation for the plan in status that the plan has not acted on yet."""
    approved = ((body.get("metadata") or {}).get("annotations") or {}).get(APPROVE_ANNOTATION)
    status = body.get("status") or {}
    return approved is not None and approved == status.get("planId") and status.get("phase") == SwapPhase.PLANNED


@kopf.on.event(GROUP, VERSION, PLURAL, when=lambda **kw: spec_not_yet_observed(**kw) or approval_pending(**kw))
async def on_swapplan_event(**_):
    await cycle_wanted.notify()


def parse_spec(plan: CustomObject) -> SwapPlanSpec | str:
    """The parsed spec, or the message saying what is wrong with it."""
    return models.parse_spec(SwapPlanSpec, plan.spec)


# ---- decide ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    """One workload of the pool that a swap can resize, with its figures per resource
    (RESOURCES order; totals over its replicas, cores and bytes)."""

    template: WorkloadTemplate
    current: np.ndarray  # requests
    used: np.ndarray
    demand: np.ndarray  # the plan's quantile, peak over the horizon
    median: np.ndarray
    upper: np.ndarray
    history_seconds: float  # how much usage history its forecast stands on


@dataclass(frozen=True)
class SwapFigures:
    """The plan's pool as this cycle's metrics and forecasts see it."""

    capacity: np.ndarray  # what the instances may hold between them, per resource
    instances: tuple[Instance, ...]
    metrics_time: float
    standings: Mapping[str, Standing] = field(default_factory=dict)  # namespace -> its Quota's class and weight
    reserved: tuple[ReservedScope, ...] = ()  # the Quotas' reservations active now


@dataclass(frozen=True)
class ClusterState:
    """What execution needs of the cluster, whether or not metrics are fresh."""

    pool_found: bool
    templates: Mapping[WorkloadKey, WorkloadTemplate]
    guard: Optional[bool | str] = None  # the guard query has series (True) or not; a str: why unknown


@dataclass(frozen=True)
class SwapDecision:
    status: dict
    events: list[tuple[str, str, bool]]
    action: Optional[TemplateRequests]


def decide(plan: CustomObject, spec: SwapPlanSpec | str, figures: Optional[SwapFigures], cluster: ClusterState,
           problem: Optional[tuple[str, str]], previous: Mapping, now: float) -> SwapDecision:
    before = list(previous.get("conditions") or [])
    # a deep copy: what changes in it (a step's state, a time put right) must differ from
    # `previous` for the status to be written
    status = copy.deepcopy({k: v for k, v in previous.items() if k != "conditions"})
    status["observedGeneration"] = plan.generation
    events: list[tuple[str, str, bool]] = []
    conditions = before
    action = None

    def condition(kind: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, kind, ok, reason, message, plan.generation)

    def enter(phase: SwapPhase, message: str, warning: bool = False) -> None:
        if status.get("phase") != phase.value:
            events.append((phase.value, message, warning))
            status["history"] = ([*(status.get("history") or []),
                                  {"time": rfc3339(now), "phase": phase.value, "swaps": status.get("swapCount") or 0,
                                   "planId": status.get("planId"), "message": message}])[-HISTORY:]
        status["phase"] = phase.value
        if phase in TERMINAL:
            status["finishedAt"] = rfc3339(now)

    def finish() -> SwapDecision:
        status["conditions"] = conditions
        return SwapDecision(status, [*[as_event(c) for c in changed(before, conditions)], *events], action)

    status.setdefault("phase", SwapPhase.PENDING.value)
    # the times read below are readable from here on (or absent: no wait)
    execution = status.get("execution") or {}
    for record, key, path, waiting in [
            (status, "finishedAt", "finishedAt", "the next plan waits minIntervalSeconds"),
            (status, "plannedAt", "plannedAt", "the plan is made again minIntervalSeconds"),
            (execution, "guardSince", "execution.guardSince", "the rollback guard checks for windowSeconds"),
            *((step, "since", f"execution.steps[{index}].since", "its rollout may take rolloutTimeoutSeconds")
              for index, step in enumerate(execution.get("steps") or []))]:
        events += restart_unreadable(record, key, path, now, waiting)
    if isinstance(spec, str):
        condition("Ready", False, "InvalidSpec", spec)
        return finish()
    phase = SwapPhase(status["phase"])

    if phase in (SwapPhase.EXECUTING, SwapPhase.APPROVED) and status.get("execution"):
        action = _execute(spec, cluster, problem, status, enter, condition, now)
        return finish()

    if problem is not None or figures is None:
        reason, message = problem or ("NoSamples", "no usage of the pool's workloads yet")
        condition("MetricsAvailable", False, reason, message)
        condition("Ready", False, "WaitingForMetrics", "no plan and no swap without fresh metrics")
        return finish()
    condition("MetricsAvailable", True, "SamplesFresh", f"usage up to {rfc3339(figures.metrics_time)}")
    if not cluster.pool_found:
        condition("Ready", False, "PoolNotFound", f"ResourcePool {spec.pool_ref.name} not found or not valid")
        return finish()
    # a forecast over a horizon from less history than the horizon is a guess, and a
    # swap on a guess takes from a workload what it may need
    short = [i for i in figures.instances if i.history_seconds < spec.horizon_seconds]
    if short:
        condition("Ready", False, "WaitingForHistory", (
            f"{short[0].template.key} has {short[0].history_seconds:.0f} s of usage history, less than the "
            f"plan's {spec.horizon_seconds} s horizon" + (f" (and {len(short) - 1} more)" if len(short) > 1 else "")))
        return finish()
    interval = spec.constraints.min_interval_seconds
    finished = seconds_since(status.get("finishedAt"), now)
    if phase in TERMINAL and finished is not None and finished < interval:
        condition("Ready", True, phase.value, f"the next plan is made {interval} s after the last one finished")
        return finish()
    planned = seconds_since(status.get("plannedAt"), now)
    if (phase is not SwapPhase.PLANNED or planned is None or planned >= interval
            or previous.get("observedGeneration") != plan.generation):
        try:
            result = _plan(spec, figures, cluster.templates, now)
        except InfeasiblePlanError as error:
            condition("Ready", False, "Infeasible", f"no plan meets the constraints: {error}")
            enter(SwapPhase.PENDING, f"no feasible plan: {error}", warning=True)
            return finish()
        status.update(result)
        enter(SwapPhase.PLANNED, f"plan {status['planId']}: {_summary(status)}")

    if not status["swaps"]:
        condition("Ready", True, "NothingToMove", "every workload's requests already fit its forecast")
        return finish()
    approved, why = _approval(spec, plan, status)
    if not approved:
        condition("Ready", True, "AwaitingApproval" if spec.approval is not ApprovalMode.DRY_RUN else "DryRun", why)
        return finish()
    enter(SwapPhase.APPROVED, f"plan {status['planId']} approved: {why}")
    action = _execute(spec, cluster, problem, status, enter, condition, now)
    return finish()


def _approval(spec: SwapPlanSpec, plan: CustomObject, status: Mapping) -> tuple[bool, str]:
    plan_id, risk = status["planId"], status["risk"]
    annotated = plan.annotations.get(APPROVE_ANNOTATION)
    how = f"kubectl annotate swapplan {plan.name} {APPROVE_ANNOTATION}={plan_id}"
    if spec.approval is ApprovalMode.DRY_RUN:
        return False, f"DryRun: plan {plan_id} is reported, never executed"
    if annotated == plan_id:
        return True, f"annotated {APPROVE_ANNOTATION}={plan_id}"
    if spec.approval is ApprovalMode.AUTO and risk <= spec.constraints.risk_threshold:
        return True, f"risk {risk:.2f} within the threshold {spec.constraints.risk_threshold:.2f}"
    stale = f" (the approval given is for plan {annotated}, not this one)" if annotated else ""
    if spec.approval is ApprovalMode.AUTO:
        return False, (f"risk {risk:.2f} above the threshold {spec.constraints.risk_threshold:.2f}: "
                       f"waiting for a person: {how}{stale}")
    return False, f"waiting for approval: {how}{stale}"


def _plan(spec: SwapPlanSpec, figures: SwapFigures, templates: Mapping[WorkloadKey, WorkloadTemplate],
          now: float) -> dict:
    """The planner's answer for the pool as status fields, with the steps that execute it."""
    units = np.array([UNIT[r] for r in RESOURCES])
    instances = figures.instances
    if not instances:
        raise InfeasiblePlanError("the pool has no Deployment or StatefulSet whose requests can be moved")
    current = np.array([i.current for i in instances]) / units
    used = np.array([i.used for i in instances]) / units
    floors = np.array([[to_float(i.template.annotations.get(FLOOR_ANNOTATIONS[r])) for r in RESOURCES]
                       for i in instances]) / units
    reserved = reservation_floors(current, [
        (np.array([i.template.key.namespace in scope.namespaces for i in instances]),
         np.array([scope.amounts.get(r, 0.0) for r in RESOURCES]) / units) for scope in figures.reserved])
    # what a workload uses now bounds how far it may shrink, not how far it must grow in
    # one plan (that is the demand's and maxChangeFraction's part); an SLA floor is hard
    minimum = np.maximum(np.maximum(floors, reserved), np.minimum(used, current))
    capacity = figures.capacity / units
    standing = [figures.standings.get(i.template.key.namespace, UNCLASSIFIED) for i in instances]
    priority = [i.template.annotations.get(PRIORITY_ANNOTATION, s.priority.value) for i, s in zip(instances, standing)]
    unknown = [p for p in priority if p not in {c.value for c in PriorityClass}]
    if unknown:
        raise InfeasiblePlanError(f"unknown priority class {unknown[0]!r} in {PRIORITY_ANNOTATION} "
                                  f"(one of {', '.join(c.value for c in PriorityClass)})")
    names = [str(i.template.key) for i in instances]
    result = plan_swaps(SwapPlanRequest(
        instances=names, resources=RESOURCES, current=current,
        demand=np.array([i.demand for i in instances]) / units,
        forecast_median=np.array([i.median for i in instances]) / units,
        forecast_upper=np.array([i.upper for i in instances]) / units,
        minimum=minimum, maximum=np.broadcast_to(capacity, current.shape).copy(),
        max_change=spec.constraints.max_change_fraction * current, capacity=capacity, priority=priority,
        fair_share=np.array([s.fair_share for s in standing]),
        shortfall_cost=spec.weights.shortfall, waste_cost=spec.weights.waste, move_cost=spec.weights.move,
        anti_thrash=AntiThrash(min_swap_relative=spec.constraints.min_swap_fraction),
        max_swaps=spec.constraints.max_swaps, risk_threshold=spec.constraints.risk_threshold))
    allocation = result.allocation * units
    targets = {names[k]: dict(zip(RESOURCES, allocation[k])) for k in range(len(names))
               if not np.allclose(allocation[k], instances[k].current, rtol=1e-9, atol=0)}
    swaps = [{"from": s.donor or "(free)", "to": s.recipient or "(free)", "resource": s.resource,
              # at a request's precision (a MiB, a millicore): what a person reads and a step writes
              "amount": format_quantity(s.resource, request_precision(s.resource, s.amount * UNIT[s.resource],
                                                                      up=False))} for s in result.swaps]
    digest = hashlib.sha256(repr(sorted((k, tuple(round(v, 3) for v in t.values())) for k, t in
                                        targets.items())).encode()).hexdigest()[:10]
    return {"planId": digest, "plannedAt": rfc3339(now), "swaps": swaps, "swapCount": len(swaps),
            "objective": {"before": round(result.objective_before, 4), "after": round(result.objective_after, 4)},
            "saving": round(result.objective_before - result.objective_after, 4), "risk": round(result.risk, 4),
            "execution": {"planId": digest, "direction": "Forward", "steps": _steps(targets, templates)}}


def _steps(targets: Mapping[str, Mapping[str, float]], templates: Mapping[WorkloadKey, WorkloadTemplate]) -> list[dict]:
    """One step per workload: its containers' requests now and as planned (the pod's total
    over replicas shared among its containers as now); donors first, recipients last."""
    steps = []
    by_name = {str(k): t for k, t in templates.items()}
    for name, total in targets.items():
        template = by_name[name]
        replicas = max(template.replicas, 1)
        now = {c.name: dict(c.requests) for c in template.containers}
        per_pod = {r: total[r] / replicas for r in RESOURCES}
        after = vertical.split_requests(per_pod, list(now.items()))
        growth = sum((total[r] - sum(c.requests.get(r, 0.0) for c in template.containers) * replicas) / UNIT[r]
                     for r in RESOURCES)
        steps.append((growth, {"workload": name, "state": "Pending",
                               "before": _containers(now, RESOURCES),
                               "after": _containers({c: {r: request_precision(r, v, up=False) for r, v in a.items()}
                                                     for c, a in after.items()}, RESOURCES)}))
    return [step for _, step in sorted(steps, key=lambda s: s[0])]


def _execute(spec: SwapPlanSpec, cluster: ClusterState, problem, status: dict, enter, condition,
             now: float) -> Optional[TemplateRequests]:
    """One cycle of an execution: settle the step in flight, start the next, or guard."""
    execution = status["execution"]
    forward = execution["direction"] == "Forward"
    enter(SwapPhase.EXECUTING, f"executing plan {execution['planId']}")
    if problem is not None and forward:
        _roll_back(execution, f"metrics vanished: {problem[1]}")
        forward = False
    templates = {str(k): t for k, t in cluster.templates.items()}
    steps = execution["steps"] if forward else [s for s in reversed(execution["steps"])
                                                if s["state"] in ("Applying", "Applied", "Restoring")]
    for step in steps:
        goal, done, busy = ("after", "Applied", "Applying") if forward else ("before", "Restored", "Restoring")
        if step["state"] == done:
            continue
        template = templates.get(step["workload"])
        if template is None:
            if forward:
                _roll_back(execution, f"{step['workload']} is gone")
                return _execute(spec, cluster, problem, status, enter, condition, now)
            step["state"] = done  # nothing left to restore
            continue
        wanted = _as_requests(step[goal])
        holds = _holds(template, wanted)
        if step["state"] == busy and holds and template.rolled_out:
            step["state"] = done
            continue
        if step["state"] == busy and holds:
            if forward and seconds_since(step["since"], now) > spec.constraints.rollout_timeout_seconds:
                _roll_back(execution, f"{step['workload']} did not roll out within "
                                      f"{spec.constraints.rollout_timeout_seconds} s")
                return _execute(spec, cluster, problem, status, enter, condition, now)
            condition("Ready", True, "RollingOut", f"waiting for {step['workload']} to roll out")
            return None
        # not yet changed (or changed by someone else since): set it, recorded first
        step["state"], step["since"] = busy, rfc3339(now)
        key = WorkloadKey(*step["workload"].split("/", 2))
        condition("Ready", True, "Executing" if forward else "RollingBack",
                  f"{'setting' if forward else 'restoring'} the requests of {step['workload']}")
        return TemplateRequests(key.namespace, key.kind, key.name, wanted)

    if not forward:
        enter(SwapPhase.ROLLED_BACK, f"plan {execution['planId']} rolled back: {execution['reason']}", warning=True)
        condition("Ready", True, "RolledBack", execution["reason"])
        return None
    guard = spec.rollback_guard
    if guard is None:
        enter(SwapPhase.SUCCEEDED, f"plan {execution['planId']} executed: {_summary(status)}")
        condition("Ready", True, "Succeeded", "every workload holds its planned requests")
        return None
    execution.setdefault("guardSince", rfc3339(now))
    answer = cluster.guard
    if answer is not True:
        why = answer if isinstance(answer, str) else f"the rollback guard's query returned no series: {guard.query}"
        _roll_back(execution, why)
        return _execute(spec, cluster, problem, status, enter, condition, now)
    if seconds_since(execution["guardSince"], now) >= guard.window_seconds:
        enter(SwapPhase.SUCCEEDED, f"plan {execution['planId']} executed and held its SLO for "
                                   f"{guard.window_seconds} s: {_summary(status)}")
        condition("Ready", True, "Succeeded", "every workload holds its planned requests and the SLO held")
        return None
    condition("Ready", True, "Guarding", f"checking the SLO until {guard.window_seconds} s after the last change")
    return None


def _roll_back(execution: dict, reason: str) -> None:
    execution["direction"], execution["reason"] = "Back", reason


def _holds(template: WorkloadTemplate, wanted: tuple[ContainerRequests, ...]) -> bool:
    have = {c.name: c.requests for c in template.containers}
    return all(math.isclose(have.get(c.name, {}).get(r, -1.0), v, rel_tol=1e-6)
               for c in wanted for r, v in c.requests.items())


def _containers(requests: Mapping[str, Mapping[str, float]], resources) -> list[dict]:
    return [{"name": name, "requests": {r: format_quantity(r, v) for r, v in amounts.items() if r in resources}}
            for name, amounts in requests.items()]


def _as_requests(containers: list[dict]) -> tuple[ContainerRequests, ...]:
    return tuple(ContainerRequests(c["name"], {r: to_float(v) for r, v in c["requests"].items()}) for c in containers)


def _summary(status: Mapping) -> str:
    swaps = status.get("swaps") or []
    moved = "; ".join(f"{s['amount']} {s['resource']} {s['from']} → {s['to']}" for s in swaps[:5])
    more = f"; and {len(swaps) - 5} more" if len(swaps) > 5 else ""
    return f"{len(swaps)} swaps, risk {status.get('risk', 0):.2f}" + (f": {moved}{more}" if swaps else "")
