"""Quota: the Kopf handlers (an index of Quotas, indices of the ResourceQuotas and
LimitRanges the operator owns, the cycle's wake-up) and the Quota's decide step.

A Quota is enforced by the apiserver itself: in each namespace of its scope it owns a
ResourceQuota (requests.cpu, requests.memory, requests.nvidia.com/gpu, pods,
requests.storage, and the counts of Deployments, StatefulSets and Jobs for
`concurrentWorkloads`) and, when the spec gives container defaults, a LimitRange. A Quota
over several namespaces keeps its total: every cycle the hard limits are split across them
by current use plus an equal share of the rest (`planner.quotas.split_total`).

`concurrentWorkloads` is one number over three object counts, which the apiserver can only
limit one by one: so that the total holds exactly, it is split across the namespaces and
then within each across the three kinds (`planner.quotas.split_by_kind`), each kind
getting its count plus an equal share of what is left. What the pods' requests do not
show (the objects' counts, the PersistentVolumeClaims' storage) is read from the
ResourceQuota's own `status.used`, the figures the apiserver's admission counts against.

Borrowing (Kueue's cohorts, over every Quota in the cluster): a Quota whose namespaces
ask for more than its limit (pods' requests, and the requests of the replicas its
Deployments and StatefulSets want but do not have, as a ResourceQuota refused them) may,
with `borrowIdle`, have its limit raised by what other Quotas leave idle, up to its
`borrowingLimit`; the lenders' limits shrink by as much, never below their own demand, so
when a lender's demand returns the borrower's limit shrinks at the next cycle
(`planner.quotas.lend_idle`). Only what pods request is borrowed: cpu, memory, GPUs, pods.

Priority classes: the Quota's `priorityClass` and `fairShareWeight` weigh its namespaces'
workloads in SwapPlans (`standings`), and the operator keeps a Kubernetes PriorityClass per
level (providers/priority_classes.py) for pods to name.

Desired against observed: the owned objects are indexed (by the managed-by label), and an
object is applied only when what it holds differs from what is wanted. The cluster, not
the operator's memory, is the record, so a restarted operator, an apply that failed, or a
hand edit of an owned object are all put right by the next cycle.

Cost: the cycle reads the month's cost grid from Prometheus once (operator/cost.py) and
hands each Quota its namespaces' spend (planner/cost.py). Status `cost` holds spent
today and this month and the forecasts to the ends of both; `BudgetExceeded` (spend over
`budget.daily` or `budget.monthly`) and `BudgetAtRisk` (a forecast over one) are filed
with a warning Event when they turn True. Without Prometheus, or with a namespace whose
Running pods have no current usage sample, `cost` is left out and `CostAvailable` is
False saying why: no figure from missing data. With `budget.action: Block`, the cycle
hands each ScalingPolicy in the scope the Quota's BudgetExceeded (`budget_holds`): over
the budget, it does not scale up. The waste findings of the scope's workloads (the cycle's
operator.cost.WasteReport) go into status `findings`, with an Event each once a day.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

import kopf

from quartermaster.operator.conditions import as_event, changed, rfc3339, set_condition
from quartermaster.operator.cost import WasteReport
from quartermaster.operator import models
from quartermaster.operator.models import GROUP, VERSION, BudgetAction, Quota, QuotaSpec
from quartermaster.operator.observe import ClusterSnapshot, CustomObject, custom_object
from quartermaster.operator.quantities import format_quantity, to_float
from quartermaster.operator.wake import cycle_wanted, spec_not_yet_observed
from quartermaster.planner.budget import (CURRENCY_MISMATCH, EXCEEDED, NO_LIMIT, SPEND_UNKNOWN, WITHIN,
                                          BudgetHold)
from quartermaster.planner.cost import Spend
from quartermaster.planner.priority import PriorityClass, Standing
from quartermaster.planner.quotas import CohortMember, lend_idle, split_by_kind, split_total
from quartermaster.planner.reservations import Reservation, ReservedScope, Window, held
from quartermaster.providers.hpa import FIELD_MANAGER, MANAGED_BY_LABEL
from quartermaster.providers.priority_classes import PriorityClasses, priority_class_manifest
from quartermaster.providers.quotas import (QUOTA_LABEL, QuotaObjects, UnwantedObject, limit_range_manifest,
                                            object_name, resource_quota_manifest)

PLURAL = Quota.plural
# Each limited resource: its ResourceQuota key and the whole unit it is split in (per
# base unit: millicores of a core; bytes, GPUs and counts are whole already).
POD_RESOURCES = {"cpu": ("requests.cpu", 1000), "memory": ("requests.memory", 1),
                 "nvidia.com/gpu": ("requests.nvidia.com/gpu", 1), "pods": ("pods", 1)}
RESOURCES = {**POD_RESOURCES, "storage": ("requests.storage", 1), "concurrentWorkloads": (None, 1)}
# concurrentWorkloads' ResourceQuota keys: one count per kind of workload
WORKLOAD_KINDS = ("count/deployments.apps", "count/statefulsets.apps", "count/jobs.batch")
MANAGED = {MANAGED_BY_LABEL: FIELD_MANAGER}
USER_LABEL = "quartermaster.dev/user"  # scope.user: the namespaces labelled <USER_LABEL>=<user>
BAD_WHEN_TRUE = ("Exceeded", "BudgetExceeded", "BudgetAtRisk")  # conditions whose True is a warning


@dataclass(frozen=True)
class OwnedRecord:
    """A ResourceQuota or LimitRange the operator manages, as the apiserver holds it."""

    kind: str
    namespace: str
    name: str
    quota: Optional[str]  # its Quota, by the label
    owner_uid: Optional[str]
    content: tuple  # `canonical` of its spec
    used: Mapping[str, float] = field(default_factory=dict)  # a ResourceQuota's status.used, by key
    uid: Optional[str] = None  # the object's own


def canonical(kind: str, spec: Mapping) -> tuple:
    """What an owned object's spec holds, with quantities as numbers ("1000m" == "1")."""
    def amounts(values: Optional[Mapping]) -> tuple:
        return tuple(sorted((k, to_float(v)) for k, v in (values or {}).items()))

    if kind == "ResourceQuota":
        return amounts(spec.get("hard"))
    return tuple((limit.get("type"), amounts(limit.get("defaultRequest")), amounts(limit.get("default")))
                 for limit in spec.get("limits") or [])


def priority_class_content(body: Mapping) -> tuple:
    """What a PriorityClass holds that the operator sets."""
    return (body.get("value"), bool(body.get("globalDefault")), body.get("preemptionPolicy"), body.get("description"))


def priority_classes_to_apply(held: Mapping[str, tuple]) -> Optional[PriorityClasses]:
    """The operator's PriorityClasses (one per level) that the cluster does not hold as wanted."""
    stale = tuple(m for m in map(priority_class_manifest, PriorityClass)
                  if held.get(m["metadata"]["name"]) != priority_class_content(m))
    return PriorityClasses(stale) if stale else None


def standings(quotas: Mapping[str, tuple[QuotaSpec | str, Optional[QuotaFigures]]]) -> dict[str, Standing]:
    """Each namespace in a valid Quota's scope: the Quota's priority class and fair-share
    weight (by Quota name). A namespace in several scopes takes the highest class among
    them, then the largest weight, then the first Quota by name, so the answer never
    depends on the order Quotas are listed in."""
    found: dict[str, tuple] = {}
    for name, (spec, scope) in sorted(quotas.items()):
        if isinstance(spec, str) or scope is None:
            continue
        rank = (-spec.priority_class.weight, -spec.fair_share_weight, name)
        for ns in scope.namespaces:
            if ns not in found or rank < found[ns][0]:
                found[ns] = (rank, Standing(spec.priority_class, spec.fair_share_weight))
    return {ns: standing for ns, (_, standing) in found.items()}


def budget_holds(quotas: Mapping[str, tuple[QuotaSpec | str, Optional[QuotaFigures], Mapping]]
                 ) -> dict[str, BudgetHold]:
    """Each namespace in the scope of a valid Quota whose budget action is Block, by the
    Quota's (spec, scope, status as decided this cycle): the first such Quota by name that
    is over its budget, else the first by name. A Quota whose cost cannot be read keeps
    the BudgetExceeded it had: nothing scales up on missing figures."""
    found: dict[str, BudgetHold] = {}
    for name, (spec, scope, status) in sorted(quotas.items()):
        if isinstance(spec, str) or scope is None or spec.budget is None or spec.budget.action != BudgetAction.BLOCK:
            continue
        hold = _budget_hold(name, spec, status)
        for ns in scope.namespaces:
            if ns not in found or (hold.exceeded and not found[ns].exceeded):
                found[ns] = hold
    return found


def _budget_hold(name: str, spec: QuotaSpec, status: Mapping) -> BudgetHold:
    """Where a Block Quota stands, from its spec and the BudgetExceeded `_budget` decided
    (kept as it was while the spend cannot be read)."""
    exceeded = next((c for c in status.get("conditions") or [] if c["type"] == "BudgetExceeded"), None)
    if spec.budget.daily is None and spec.budget.monthly is None:
        # _budget drops BudgetExceeded then, but only once it reads the spend: one left from
        # an earlier spec must not hold
        return BudgetHold(name, NO_LIMIT, "")
    if exceeded is None:
        return BudgetHold(name, SPEND_UNKNOWN, "")
    if exceeded["status"] == "True":
        return BudgetHold(name, EXCEEDED, exceeded["message"])
    return BudgetHold(name, CURRENCY_MISMATCH if exceeded["reason"] == CURRENCY_MISMATCH else WITHIN,
                      exceeded["message"])


def owned_record(kind: str, namespace: str, name: str, labels: Mapping, meta: Mapping, spec: Mapping,
                 status: Optional[Mapping] = None) -> OwnedRecord:
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == Quota.kind), {})
    used = {key: to_float(v) for key, v in ((status or {}).get("used") or {}).items()}
    return OwnedRecord(kind, namespace, name, labels.get(QUOTA_LABEL), owner.get("uid"), canonical(kind, spec), used,
                       meta.get("uid"))


# ---- Kopf: the indices the cycle reads, and its wake-up ------------------------------

@kopf.index(GROUP, VERSION, PLURAL)
def quota_index(name, body, **_):
    return {name: custom_object(body)}


@kopf.index("", "v1", "resourcequotas", labels=MANAGED)
def resourcequota_index(namespace, name, labels, meta, spec, status, **_):
    return {(namespace, name): owned_record("ResourceQuota", namespace, name, labels, meta, spec, status)}


@kopf.index("", "v1", "limitranges", labels=MANAGED)
def limitrange_index(namespace, name, labels, meta, spec, **_):
    return {(namespace, name): owned_record("LimitRange", namespace, name, labels, meta, spec)}


@kopf.index("scheduling.k8s.io", "v1", "priorityclasses", labels=MANAGED)
def priorityclass_index(name, body, **_):
    return {name: priority_class_content(body)}


@kopf.on.event(GROUP, VERSION, PLURAL, when=spec_not_yet_observed)
async def on_quota_event(**_):
    await cycle_wanted.notify()


def parse_spec(quota: CustomObject) -> QuotaSpec | str:
    """The parsed spec, or the message saying what is wrong with it."""
    return models.parse_spec(QuotaSpec, quota.spec)


# ---- decide ----------------------------------------------------------------------------

@dataclass(frozen=True)
class QuotaFigures:
    """The Quota's scope as the cluster holds it this cycle."""

    namespaces: tuple[str, ...]  # in scope and existing, sorted
    missing: tuple[str, ...]  # listed in the scope but not in the cluster
    used: Mapping[str, Mapping[str, float]]  # namespace -> resource -> its pods' requests, its storage, its workloads
    held: Mapping[tuple[str, str, str], OwnedRecord]  # (kind, namespace, name) -> the Quota's owned objects
    running: frozenset[str] = frozenset()  # namespaces in scope with a pod on a node
    workloads: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # namespace -> count per WORKLOAD_KINDS
    # namespace -> POD_RESOURCES: `used` plus the requests of the replicas its workloads lack
    demand: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class CostFigures:
    """The Quota's namespaces' spend, in the price table's currency."""

    spend: Spend
    currency: str


def cost_figures(figures: Optional[QuotaFigures], cost) -> CostFigures | tuple[str, str] | None:
    """The Quota's spend from the cycle's cost read (operator.cost.CostData, or (reason,
    message) when the read failed), or (reason, message) when it cannot be given: the read
    failed, or a namespace whose pods run has no current usage sample."""
    if cost is None or figures is None or not figures.namespaces:
        return None
    if isinstance(cost, tuple):
        return cost
    data = cost
    stale = sorted(figures.running - data.fresh)
    if stale:
        return ("UsageStale", f"no current usage sample for the running pods of {', '.join(stale)}: "
                              f"no cost figures until Prometheus has them")
    return CostFigures(data.spend(figures.namespaces), data.currency)


def figures(quota: CustomObject, spec: QuotaSpec | str, snapshot: ClusterSnapshot) -> Optional[QuotaFigures]:
    if isinstance(spec, str):
        return None
    labels = snapshot.namespace_labels
    selectors = _label_selectors(spec)
    wanted = set(spec.scope.namespaces) | {ns for ns, ns_labels in labels.items()
                                           if any(ns_labels.get(key) == value for key, value in selectors)}
    namespaces = tuple(sorted(ns for ns in wanted if ns in labels))
    used = {ns: {r: 0.0 for r in RESOURCES} for ns in namespaces}
    for pod in snapshot.pods:
        if pod.namespace in used:
            for resource in POD_RESOURCES:
                used[pod.namespace][resource] += pod.requests.get(resource, 0.0)
    held = {(r.kind, r.namespace, r.name): r for r in snapshot.quota_objects if r.quota == quota.name}
    # the apiserver's own count, once its quota controller has filled in our object's status
    counted = {ns: held.get(("ResourceQuota", ns, object_name(quota.name))) for ns in namespaces}
    workloads = {ns: tuple(round(r.used.get(k, 0.0)) if r else 0 for k in WORKLOAD_KINDS) for ns, r in counted.items()}
    for ns, record in counted.items():
        used[ns]["storage"] = record.used.get(RESOURCES["storage"][0], 0.0) if record else 0.0
        used[ns]["concurrentWorkloads"] = float(sum(workloads[ns]))
    running = frozenset(p.namespace for p in snapshot.pods if p.namespace in used and p.node)
    return QuotaFigures(namespaces, tuple(sorted(wanted - set(namespaces))), used, held, running, workloads,
                        _demand(used, snapshot))


def _label_selectors(spec: QuotaSpec) -> list[tuple[str, str]]:
    """The labels (key, value) that put a namespace in the scope: the team's, the user's."""
    team, user = spec.scope.team, spec.scope.user
    return [*([(team.key, team.value)] if team else []), *([(USER_LABEL, user)] if user else [])]


def _demand(used: Mapping[str, Mapping[str, float]], snapshot: ClusterSnapshot) -> dict[str, dict[str, float]]:
    """What each namespace's pods request, and what the replicas its Deployments and
    StatefulSets want but lack would: the demand a ResourceQuota hides by refusing them."""
    demand = {ns: {r: amounts[r] for r in POD_RESOURCES} for ns, amounts in used.items()}
    pods_of = snapshot.pods_per_workload
    for template in snapshot.workloads:
        missing = template.replicas - pods_of[template.key]
        if template.key.namespace in demand and missing > 0:
            for resource in POD_RESOURCES:
                per_pod = 1.0 if resource == "pods" else sum(c.requests.get(resource, 0.0) for c in template.containers)
                demand[template.key.namespace][resource] += missing * per_pod
    return demand


def reservations(spec: QuotaSpec) -> list[Reservation]:
    """The spec's reservations, amounts in base units by resource."""
    found = []
    for reservation in spec.reservations:
        schedule = reservation.schedule
        window = None if schedule is None else Window(
            schedule.start.minutes, schedule.end.minutes,
            frozenset(list(models.Weekday).index(d) for d in schedule.days) or frozenset(range(7)))
        found.append(Reservation(_limits(reservation.resources), window))
    return found


def reserved_scopes(quotas: Mapping[str, tuple[QuotaSpec | str, Optional[QuotaFigures]]],
                    now: float) -> tuple[ReservedScope, ...]:
    """Each valid Quota's reservations active now, over the namespaces of its scope."""
    found = []
    for _, (spec, scope) in sorted(quotas.items()):
        if isinstance(spec, str) or scope is None or not scope.namespaces:
            continue
        amounts = held(reservations(spec), now)
        if amounts:
            found.append(ReservedScope(frozenset(scope.namespaces), amounts))
    return tuple(found)


def loans(quotas: Mapping[str, tuple[QuotaSpec | str, Optional[QuotaFigures]]],
          now: float) -> dict[str, dict[str, float]]:
    """What each Quota borrows (positive) or lends (negative) per resource, by name: every
    valid Quota limiting a resource its pods request is in that resource's cohort; what
    its reservations active `now` hold is not lent."""
    found: dict[str, dict[str, float]] = {name: {} for name in quotas}
    for resource, (_, unit) in POD_RESOURCES.items():
        names, members = [], []
        for name, (spec, scope) in sorted(quotas.items()):
            limit = None if isinstance(spec, str) or scope is None else _limits(spec.hard).get(resource)
            if limit is None:
                continue
            borrowing = _limits(spec.borrowing_limit).get(resource) if spec.borrow_idle else 0.0
            lending = _limits(spec.lending_limit).get(resource)
            reserved = held(reservations(spec), now).get(resource, 0.0)
            names.append(name)
            members.append(CohortMember(
                _units(limit, unit), _units(sum(scope.demand[ns][resource] for ns in scope.namespaces), unit, up=True),
                spec.fair_share_weight, None if borrowing is None else _units(borrowing, unit),
                None if lending is None else _units(lending, unit), _units(reserved, unit, up=True)))
        for name, change in zip(names, lend_idle(members)):
            if change:
                found[name][resource] = change / unit
    return found


def _limits(amounts) -> dict[str, float]:
    """A QuotaLimits' or BorrowableLimits' amounts by resource (base units); none when absent."""
    if amounts is None:
        return {}
    return {r: to_float(v) for r, v in amounts.model_dump(by_alias=True, exclude_none=True).items()}


def _units(amount: float, unit: int, up: bool = False) -> int:
    """An amount in whole units: a limit rounded down, so rounding never exceeds it; a use
    or a demand rounded up (`up`), so rounding never hides any of it."""
    return math.ceil(amount * unit - 1e-9) if up else math.floor(amount * unit + 1e-9)


@dataclass(frozen=True)
class QuotaDecision:
    status: dict
    events: list[tuple[str, str, bool]]
    action: Optional[QuotaObjects]


def decide(quota: CustomObject, spec: QuotaSpec | str, figures: Optional[QuotaFigures], previous: Mapping,
           now: float, cost: CostFigures | tuple[str, str] | None = None,
           loan: Mapping[str, float] = {}, waste: Optional[WasteReport] = None) -> QuotaDecision:
    """`loan`: what `loans` says this Quota borrows (positive) or lends (negative), per resource;
    `waste`: the last cost read's findings (None: none read, the findings in status are kept)."""
    before = list(previous.get("conditions") or [])
    generation = quota.generation

    def finish(conditions, extra=None, action=None):
        status = {"observedGeneration": generation, **(extra or {}), "conditions": conditions}
        events = [(reason, message, warning != (c["type"] in BAD_WHEN_TRUE))
                  for c in changed(before, conditions) for reason, message, warning in [as_event(c)]]
        if action is not None:
            status["lastAction"] = {"action": action.describe(), "time": rfc3339(now)}
            events.append((action.event_reason, status["lastAction"]["action"], False))
        return QuotaDecision(status, events, action)

    if isinstance(spec, str):
        return finish(set_condition(before, "Ready", False, "InvalidSpec", spec, generation))
    if not figures.namespaces:
        missing = f": {', '.join(figures.missing)} not found" if figures.missing else ""
        labelled = " or ".join(f"{key}={value}" for key, value in _label_selectors(spec))
        unlabelled = f" (and none is labelled {labelled})" if labelled else ""
        gone = _unwanted(figures.held, [], quota)
        return finish(set_condition(before, "Ready", False, "NoNamespaces",
                                    f"no namespace is in the scope{missing}{unlabelled}; nothing is enforced",
                                    generation), action=QuotaObjects(quota.name, (), gone) if gone else None)

    own = _limits(spec.hard)
    hard = {r: limit + loan.get(r, 0.0) for r, limit in own.items()}
    used = figures.used
    # the pods' requests are always known; the counts only where our ResourceQuota limits them
    measured = [r for r in RESOURCES if r in POD_RESOURCES or r in hard]
    totals = {r: sum(used[ns][r] for ns in figures.namespaces) for r in measured}
    shares, kinds = _split(hard, figures)
    owner = quota.reference
    wanted = []
    for ns in figures.namespaces:
        if hard:
            keys = {RESOURCES[r][0]: format_quantity(r, shares[ns][r]) for r in hard if r != "concurrentWorkloads"}
            keys.update({k: str(n) for k, n in zip(WORKLOAD_KINDS, kinds.get(ns, ()))})
            wanted.append(resource_quota_manifest(ns, keys, owner))
        if spec.defaults is not None:
            amounts = [spec.defaults.requests, spec.defaults.limits]
            requests, limits = ({} if a is None else a.model_dump(exclude_none=True) for a in amounts)
            wanted.append(limit_range_manifest(ns, requests, limits, owner))
    # desired against observed: only objects that do not hold what is wanted are applied,
    # the ones that lower a limit first, so the parts never add up to more than the total
    stale = tuple(sorted((m for m in wanted if not _holds(figures.held, m, quota.uid)),
                         key=lambda m: not _only_lowers(figures.held, m)))
    gone = _unwanted(figures.held, wanted, quota)
    extra = {
        "usage": {r: _amount(r, v) for r, v in totals.items()},
        "remaining": {r: _amount(r, max(0.0, hard[r] - totals[r])) for r in hard},
        "split": [{"namespace": ns, "used": {r: _amount(r, used[ns][r]) for r in measured},
                   "hard": {r: _amount(r, shares[ns][r]) for r in hard}} for ns in figures.namespaces],
        "ownedObjects": [{"kind": m["kind"], "namespace": m["metadata"]["namespace"], "name": m["metadata"]["name"]}
                         for m in wanted],
    }
    # None when there is no loan, which the merge patch removes from status
    extra["borrowed"] = {r: _amount(r, v) for r, v in loan.items() if v > 0} or None
    extra["lent"] = {r: _amount(r, -v) for r, v in loan.items() if v < 0} or None
    extra["reservations"] = _reservation_status(spec, now)
    over = [r for r in hard if totals[r] > hard[r] + 1e-9]
    if over:
        conditions = set_condition(before, "Exceeded", True, "OverLimit", "; ".join(
            f"{r} requests {format_quantity(r, totals[r])} over the limit {format_quantity(r, hard[r])} ("
            + ", ".join(f"{ns} {format_quantity(r, used[ns][r])}" for ns in figures.namespaces) + ")"
            for r in over) + ": the apiserver refuses new pods in these namespaces until their requests fall under "
            "the limit; scale workloads down or raise spec.hard", generation)
    else:
        conditions = set_condition(before, "Exceeded", False, "WithinLimit",
                                   "every limited resource is within the Quota's total", generation)
    enforced = (f"{len(wanted)} objects in {len(figures.namespaces)} namespaces hold the Quota's limits"
                if wanted else "no hard limits and no defaults in the spec: nothing to enforce")
    if figures.missing:
        conditions = set_condition(conditions, "Ready", True, "NamespacesMissing",
                                   f"{enforced}; not found, so not enforced: {', '.join(figures.missing)}",
                                   generation)
    else:
        conditions = set_condition(conditions, "Ready", True, "Enforced", enforced, generation)
    conditions = _borrowing(conditions, spec, own, loan, figures, generation)
    conditions, extra["cost"] = _budget(conditions, spec, cost, now, generation)
    extra["findings"], noticed = ((previous.get("findings"), []) if waste is None
                                  else waste.for_quota(figures.namespaces, previous.get("findings"), now))
    decision = finish(conditions, extra, QuotaObjects(quota.name, stale, gone) if stale or gone else None)
    decision.events.extend(noticed)
    return decision


def _borrowing(conditions: list[dict], spec: QuotaSpec, own: Mapping[str, float], loan: Mapping[str, float],
               figures: QuotaFigures, generation: int) -> list[dict]:
    borrowed = {r: v for r, v in loan.items() if v > 0}
    if borrowed:
        return set_condition(conditions, "Borrowing", True, "BorrowingIdle", "; ".join(
            f"{r}: {format_quantity(r, v)} over the limit {format_quantity(r, own[r])}" for r, v in borrowed.items())
            + ": other Quotas' idle capacity, given back as their demand returns", generation)
    if not spec.borrow_idle:
        return set_condition(conditions, "Borrowing", False, "BorrowingOff",
                             "spec.borrowIdle is off: the Quota keeps to its own limits", generation)
    wanting = [r for r in own if r in POD_RESOURCES
               and sum(figures.demand[ns][r] for ns in figures.namespaces) > own[r] + 1e-9]
    if wanting:
        return set_condition(conditions, "Borrowing", False, "NothingIdle",
                             f"demand for {', '.join(wanting)} is over the limit and no other Quota has idle "
                             f"capacity to lend (what their active reservations hold is not lent; or the "
                             f"borrowingLimit is 0)", generation)
    return set_condition(conditions, "Borrowing", False, "DemandWithinLimit",
                         "demand is within the Quota's own limits: nothing to borrow", generation)


def _reservation_status(spec: QuotaSpec, now: float) -> Optional[list[dict]]:
    """Each reservation: whether it holds now and, for a scheduled one, the window it is in
    or else the next one (None without reservations, which the merge patch removes)."""
    found = []
    for index, (given, reservation) in enumerate(zip(spec.reservations, reservations(spec))):
        entry = {"name": given.name or f"reservations[{index}]", "active": True}
        if reservation.window is not None:
            active, start, end = reservation.window.around(now)
            entry.update(active=active, start=rfc3339(start), end=rfc3339(end))
        found.append(entry)
    return found or None


def _budget(conditions: list[dict], spec: QuotaSpec, cost: CostFigures | tuple[str, str] | None, now: float,
            generation: int) -> tuple[list[dict], Optional[dict]]:
    """The cost conditions and status `cost` (None: left out, which the merge patch removes)."""
    if cost is None:
        return conditions, None
    if isinstance(cost, tuple):
        reason, message = cost
        return set_condition(conditions, "CostAvailable", False, reason, message, generation), None
    spent = cost.spend
    conditions = set_condition(conditions, "CostAvailable", True, "Measured",
                               "charged for max(request, usage) x price, from Prometheus", generation)
    figures = {"today": round(spent.today, 6), "thisMonth": round(spent.month, 6),
               "forecastToday": round(spent.forecast_today, 6), "forecastMonth": round(spent.forecast_month, 6),
               "currency": cost.currency, "asOf": rfc3339(now)}
    budget = spec.budget
    if budget is None or (budget.daily is None and budget.monthly is None):
        return [c for c in conditions if c["type"] not in ("BudgetExceeded", "BudgetAtRisk")], figures
    if budget.currency != cost.currency:
        message = f"the budget is in {budget.currency}, the price table in {cost.currency}: not compared"
        for kind in ("BudgetExceeded", "BudgetAtRisk"):
            conditions = set_condition(conditions, kind, False, CURRENCY_MISMATCH, message, generation)
        return conditions, figures
    periods = [(name, limit, amount, forecast) for name, limit, amount, forecast in (
        ("daily", budget.daily, spent.today, spent.forecast_today),
        ("monthly", budget.monthly, spent.month, spent.forecast_month)) if limit is not None]
    currency = cost.currency
    over = [f"spent {amount:.2f} {currency} over the {name} budget {limit:.2f}"
            for name, limit, amount, _ in periods if amount > limit]
    at_risk = [f"forecast {forecast:.2f} {currency} over the {name} budget {limit:.2f}"
               for name, limit, _, forecast in periods if forecast > limit]
    conditions = set_condition(conditions, "BudgetExceeded", bool(over), "OverBudget" if over else "WithinBudget",
                               "; ".join(over) or "spend is within the budget", generation)
    conditions = set_condition(conditions, "BudgetAtRisk", bool(at_risk), "ForecastOverBudget" if at_risk
                               else "ForecastWithinBudget", "; ".join(at_risk) or "the forecast spend is within the "
                               "budget (spent + the last hour's rate for the hours left)", generation)
    return conditions, figures


def _split(hard: Mapping[str, float], figures: QuotaFigures) -> tuple[dict[str, dict[str, float]],
                                                                       dict[str, list[int]]]:
    """Each namespace's hard limit per resource (base units), split in whole units (see
    `_units`: the parts never add up to more than the limit, and a namespace's part never
    falls below what it holds). And, with
    `concurrentWorkloads`, each namespace's part of it per kind (WORKLOAD_KINDS)."""
    namespaces, used = figures.namespaces, figures.used
    shares: dict[str, dict[str, float]] = {ns: {} for ns in namespaces}
    for resource, total in hard.items():
        unit = RESOURCES[resource][1]
        parts = split_total(_units(total, unit), [_units(used[ns][resource], unit, up=True) for ns in namespaces])
        for ns, part in zip(namespaces, parts):
            shares[ns][resource] = part / unit
    kinds = {}
    if "concurrentWorkloads" in hard:
        parts = split_by_kind(round(hard["concurrentWorkloads"]), [figures.workloads[ns] for ns in namespaces])
        kinds = dict(zip(namespaces, parts))
    return shares, kinds


def _amount(resource: str, amount: float) -> str | int:
    """A figure as status holds it: pods are counted (an integer), the rest are quantities."""
    return round(amount) if resource in ("pods", "concurrentWorkloads") else format_quantity(resource, amount)


def _only_lowers(held: Mapping[tuple[str, str, str], OwnedRecord], manifest: Mapping) -> bool:
    """Whether the manifest is of an existing ResourceQuota and raises none of its limits."""
    meta = manifest["metadata"]
    record = held.get((manifest["kind"], meta["namespace"], meta["name"]))
    if manifest["kind"] != "ResourceQuota" or record is None:
        return False
    now = dict(record.content)
    return all(amount <= now.get(key, 0.0) for key, amount in canonical("ResourceQuota", manifest["spec"]))


def _unwanted(held: Mapping[tuple[str, str, str], OwnedRecord], wanted: list[dict],
              quota: CustomObject) -> tuple[UnwantedObject, ...]:
    """The Quota's own objects (by its label, its name, and an owner reference to this very
    Quota) that it no longer wants: in a namespace that left its scope, or of a kind its
    spec no longer asks for. Nothing else is ever deleted, a user's own objects least."""
    keep = {(m["kind"], m["metadata"]["namespace"], m["metadata"]["name"]) for m in wanted}
    return tuple(UnwantedObject(r.kind, r.namespace, r.name, r.uid) for key, r in sorted(held.items())
                 if key not in keep and r.name == object_name(quota.name) and r.owner_uid == quota.uid)


def _holds(held: Mapping[tuple[str, str, str], OwnedRecord], manifest: Mapping, owner_uid: str) -> bool:
    meta = manifest["metadata"]
    record = held.get((manifest["kind"], meta["namespace"], meta["name"]))
    return (record is not None and record.owner_uid == owner_uid
            and record.content == canonical(manifest["kind"], manifest["spec"]))

