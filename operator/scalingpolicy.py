"""ScalingPolicy: the Kopf handlers (an index of policies, one of HPAs, waking the cycle)
and the policy's decide step, which turns its target's usage and forecast into a
recommendation (replicas, or requests), its reasoning, and the action that applies it.

Horizontal policies (Reactive, Predictive) act through an `autoscaling/v2` HPA the policy
owns: the recommendation becomes the HPA's `minReplicas` (a floor raised ahead of
demand), the spec's maximum its `maxReplicas`, and the HPA controller scales the target.
A policy acts only when its metrics are fresh, its confidence clears the threshold (else
it recommends reactively and says so), no cooldown runs, no other object scales the same
target, and `updateMode` is not Off.

Horizontal policies scale on cpu, memory, or custom signals (`promql`, `queueDepth`): a
PromQL query whose answer, summed, is the signal's total, forecast like usage and divided
by the signal's `target` per replica. The forecast quantile and horizon not set in the spec
(and the scale-down delay and requests buffer) come from the strategy of the ResourcePool
the target is a member of, else from the defaults (`resolve_settings`).

Vertical policies recommend each container's requests (`planner.vertical`) and, with
`updateMode: Auto`, set them on the target's pod template, which its controller rolls out
(one change at a time: none while a rollout runs); with `InPlace` they resize the running
pods through their `resize` subresource and leave the template alone. Pods are touched only
when a request moves by more than the tolerance, after the cooldown of the way it moves
(an OOMKill seen in the pods skips both the confidence gate and the cooldown: they are
failing now).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Optional

import kopf
import numpy as np

from quartermaster.operator.conditions import (as_event, changed, restart_unreadable, rfc3339, seconds_since,
                                               set_condition)
from quartermaster.operator import models
from quartermaster.operator.models import GROUP, VERSION, ScalingMode, ScalingPolicy, ScalingPolicySpec, UpdateMode
from quartermaster.operator.observe import CustomObject, custom_object
from quartermaster.operator.prometheus_reader import MetricsUnavailable
from quartermaster.operator.quantities import format_quantity, request_precision, to_float
from quartermaster.operator.wake import cycle_wanted, spec_not_yet_observed
from quartermaster.operator.workloads import ContainerRequests, WorkloadKey, WorkloadTemplate
from quartermaster.planner import budget, scaling, vertical
from quartermaster.planner.budget import BudgetHold
from quartermaster.planner.nodepools import NodePoolMemory
from quartermaster.planner.pools import NO_POOL_DEFAULTS, StrategyParameters
from quartermaster.providers.hpa import ADOPT_ANNOTATION, POLICY_LABEL, ReplicaBounds
from quartermaster.providers.node_pools import NodePoolSize
from quartermaster.providers.requests import PodResize, TemplateRequests

PLURAL = ScalingPolicy.plural
HORIZONTAL = (ScalingMode.REACTIVE, ScalingMode.PREDICTIVE)
REPLICAS = "replicas"  # what a horizontal scaler sets, beside the resources it scales on
FORECAST_POINTS = 6  # the compact forecast in status: quantile values at this many horizons
OOM_MEMORY_SECONDS = 86400  # how long memory stays raised after an OOMKill (VPA's half-life)
CUSTOM_SIGNALS = ("promql", "queueDepth")  # read by their own PromQL query, not from usage
NODE_POOL = "NodePool"  # a targetRef kind sized through a provider (operator/nodepools.py), not a workload
# the status records with a time the decision reads, and what waits on it
TIMED_RECORDS = {"lastAction": "the next change waits its cooldown", "lastOomKill": "memory stays raised for a day"}


@dataclass(frozen=True)
class HpaRecord:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    policy: Optional[str]  # the ScalingPolicy that owns it, by its label
    adoptable: bool  # a user's HPA annotated quartermaster.dev/adopt: "true"
    min_replicas: Optional[int]
    max_replicas: Optional[int]
    resources: frozenset[str] = frozenset({"cpu"})  # the resources its metrics scale on

    @property
    def target(self) -> WorkloadKey:
        return WorkloadKey(self.namespace, self.target_kind, self.target_name)

    @property
    def claims(self) -> frozenset[str]:
        return frozenset({REPLICAS}) | self.resources


def hpa_record(namespace: str, name: str, spec: Mapping, labels: Mapping, annotations: Mapping) -> HpaRecord:
    target = spec.get("scaleTargetRef") or {}
    # Resource and ContainerResource metrics scale on a resource relative to its request;
    # an HPA with no metrics scales on cpu (the API's default).
    resources = frozenset((m.get("resource") or m.get("containerResource") or {}).get("name")
                          for m in spec.get("metrics") or [{"type": "Resource", "resource": {"name": "cpu"}}]
                          if m.get("type") in ("Resource", "ContainerResource")) - {None}
    return HpaRecord(namespace, name, target.get("kind", ""), target.get("name", ""),
                     labels.get(POLICY_LABEL), annotations.get(ADOPT_ANNOTATION) == "true",
                     spec.get("minReplicas"), spec.get("maxReplicas"), resources)


@dataclass(frozen=True)
class VpaRecord:
    """A VerticalPodAutoscaler (autoscaling.k8s.io) that sets its target's requests: one
    whose updateMode is not Off, for the resources it controls."""

    namespace: str
    name: str
    target_kind: str
    target_name: str
    claims: frozenset[str]  # the resources whose requests it sets; empty: it only recommends

    @property
    def target(self) -> WorkloadKey:
        return WorkloadKey(self.namespace, self.target_kind, self.target_name)


def vpa_record(namespace: str, name: str, spec: Mapping) -> VpaRecord:
    target = spec.get("targetRef") or {}
    claims: frozenset[str] = frozenset()
    if (spec.get("updatePolicy") or {}).get("updateMode", "Auto") != "Off":
        # the VPA's defaults: every container, cpu and memory, unless a container policy says less
        policies = (spec.get("resourcePolicy") or {}).get("containerPolicies") or [{}]
        claims = frozenset(resource for policy in policies if policy.get("mode", "Auto") != "Off"
                           for resource in policy.get("controlledResources") or ("cpu", "memory"))
    return VpaRecord(namespace, name, target.get("kind", ""), target.get("name", ""), claims)


# ---- Kopf: the indices the cycle reads, and its wake-up ------------------------------

@kopf.index(GROUP, VERSION, PLURAL)
def policy_index(namespace, name, body, **_):
    return {(namespace, name): custom_object(body)}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers")
def hpa_index(namespace, name, spec, labels, annotations, **_):
    return {(namespace, name): hpa_record(namespace, name, spec, labels, annotations)}


# Empty where the VPA's CRD is not installed: Kopf watches only the resources the cluster serves.
@kopf.index("autoscaling.k8s.io", "v1", "verticalpodautoscalers")
def vpa_index(namespace, name, spec, **_):
    return {(namespace, name): vpa_record(namespace, name, spec)}


@kopf.on.event(GROUP, VERSION, PLURAL, when=spec_not_yet_observed)
async def on_policy_event(**_):
    await cycle_wanted.notify()


# ---- decide ----------------------------------------------------------------------------

def parse_spec(policy: CustomObject) -> ScalingPolicySpec | str:
    """The parsed spec, or the message saying what is wrong with it."""
    return models.parse_spec(ScalingPolicySpec, policy.spec)


def target_of(policy: CustomObject, spec: ScalingPolicySpec) -> WorkloadKey:
    return WorkloadKey(policy.namespace, spec.target_ref.kind, spec.target_ref.name)


@dataclass(frozen=True)
class Ownership:
    """Which HPA a policy manages (and what it holds now), or what it conflicts with."""

    hpa_name: Optional[str]
    hpa: Optional[HpaRecord] = None  # None: not created yet
    conflict: Optional[str] = None


def claims(spec: ScalingPolicySpec) -> frozenset[str]:
    """What a policy sets on its target: a horizontal one the replicas, through an HPA that
    scales on cpu (and on what its signals read); a vertical one the requests of its
    signals' resources."""
    resources = frozenset(s.type for s in spec.signals if s.type in ("cpu", "memory"))
    return frozenset({REPLICAS, "cpu"}) | resources if spec.mode in HORIZONTAL else resources


def ownership(policy: CustomObject, spec: ScalingPolicySpec,
              policies: Iterable[tuple[CustomObject, ScalingPolicySpec]], hpas: Iterable[HpaRecord],
              vpas: Iterable[VpaRecord] = ()) -> Ownership:
    """One owner per signal of a target: another ScalingPolicy that sets any of the same
    things (the replicas, or the requests of a resource the other scales on) is a conflict
    for the later of the two by name; so is an HPA this policy does not own and may not
    adopt, or a VPA that sets the requests of a resource this policy scales on or sets.
    HPAs are the replicas' owners first come: a horizontal policy never takes the target
    from an HPA that already scales it, another policy's included. A vertical policy
    meets another policy's HPA as that policy, so that of the two only one steps back."""
    target, mine = target_of(policy, spec), claims(spec)

    def overlap(theirs: frozenset[str]) -> str:
        return ", ".join(sorted(mine & theirs))

    for other, other_spec in policies:
        if (other.uid != policy.uid and other.namespace == policy.namespace and other.name < policy.name
                and target_of(other, other_spec) == target and mine & claims(other_spec)):
            return Ownership(None, conflict=f"ScalingPolicy {other.namespace}/{other.name} already scales "
                                            f"{target.kind} {target.name} ({overlap(claims(other_spec))})")
    siblings = {other.name for other, _ in policies if other.namespace == policy.namespace}
    held = None
    for hpa in hpas:
        if hpa.target != target or not mine & hpa.claims:
            continue
        if spec.mode in HORIZONTAL and (hpa.policy == policy.name or hpa.adoptable):
            held = hpa
        elif spec.mode in HORIZONTAL or hpa.policy not in siblings:
            return Ownership(None, conflict=(
                f"HorizontalPodAutoscaler {hpa.namespace}/{hpa.name} already scales {target.kind} {target.name} "
                f"({overlap(hpa.claims)}; annotate it {ADOPT_ANNOTATION}=true to let a horizontal policy adopt it)"))
    for vpa in vpas:
        if vpa.target == target and mine & vpa.claims:
            return Ownership(None, conflict=(
                f"VerticalPodAutoscaler {vpa.namespace}/{vpa.name} already sets the {overlap(vpa.claims)} "
                f"requests of {target.kind} {target.name} (set its updateMode to Off, or its "
                f"controlledResources to others, to let this policy act)"))
    return Ownership(held.name, held) if held is not None else Ownership(policy.name)


@dataclass(frozen=True)
class SignalFigures:
    """One signal of the policy's target, as observed and forecast this cycle."""

    signal: str  # cpu | memory | promql | queueDepth
    demand: Optional[float]  # the signal's total now (cores, bytes, the query's sum), None if stale
    forecast: np.ndarray  # [H] the policy's quantile over the horizon, total demand
    confidence: float
    target_per_replica: Optional[float]  # from the spec, else (cpu, memory) the pod's request
    recent_peak: Optional[float] = None  # the target's highest total usage over the last day
    median: Optional[np.ndarray] = None  # [H] the forecast's median: the bottom of Predictive's band
    query: Optional[str] = None  # a custom signal's PromQL

    @property
    def name(self) -> str:
        """The signal as its spec names it: a custom one with its query."""
        return self.signal if self.query is None else f"{self.signal} `{self.query}`"


@dataclass(frozen=True)
class PoolStrategy:
    """The ResourcePool a policy's target is a member of, and its strategy's numbers."""

    pool: str
    strategy: str
    parameters: StrategyParameters


@dataclass(frozen=True)
class Settings:
    """The numbers a policy decides with, and where they came from."""

    parameters: StrategyParameters  # quantile and horizon as the spec sets them, else its pool's
    source: str

    def status(self) -> dict:
        p = self.parameters
        return {"quantile": p.quantile, "horizonSeconds": p.horizon_seconds,
                "scaleDownDelaySeconds": p.scale_down_delay_seconds, "buffer": p.buffer, "source": self.source}


def resolve_settings(spec: ScalingPolicySpec, pool: Optional[PoolStrategy]) -> Settings:
    """The policy's forecast quantile and horizon where its spec sets them (and, sizing a
    node pool, its scale-down delay: `scaleDown.cooldownSeconds`); the rest, and what it
    leaves unset, from its pool's strategy, else the defaults for no pool."""
    own = {name: value for name, value in (
        ("quantile", spec.forecast.quantile), ("horizonSeconds", spec.forecast.horizon_seconds),
        ("scaleDownDelaySeconds", spec.scale_down.cooldown_seconds if spec.target_ref.kind == NODE_POOL else None))
        if value is not None}
    base = NO_POOL_DEFAULTS if pool is None else pool.parameters
    parameters = replace(base, quantile=own.get("quantile", base.quantile),
                         horizon_seconds=own.get("horizonSeconds", base.horizon_seconds),
                         scale_down_delay_seconds=own.get("scaleDownDelaySeconds", base.scale_down_delay_seconds))
    inherited = [name for name in ("quantile", "horizonSeconds", "scaleDownDelaySeconds") if name not in own] + [
        "buffer"]
    origin = ("the defaults (the target is in no ResourcePool)" if pool is None
              else f"ResourcePool {pool.pool}'s {pool.strategy} strategy")
    parts = ([f"{', '.join(own)}: the policy's own"] if own else []) + [f"{', '.join(inherited)}: {origin}"]
    return Settings(parameters, "; ".join(parts))


@dataclass(frozen=True)
class PolicyFigures:
    replicas: int  # the target's pods now
    signals: tuple[SignalFigures, ...]
    step_seconds: int
    metrics_time: float
    template: Optional[WorkloadTemplate] = None  # the target's pod template, if indexed
    pods: tuple[tuple[str, tuple[ContainerRequests, ...]], ...] = ()  # each pod's containers
    oom_killed: bool = False  # a container of a pod of the target was OOMKilled last time
    pool: Optional[PoolStrategy] = None  # the pool whose strategy sets what the spec leaves unset


@dataclass(frozen=True)
class PolicyDecision:
    status: dict
    events: list[tuple[str, str, bool]]
    action: Optional[ReplicaBounds | TemplateRequests | PodResize | NodePoolSize]
    # kept between cycles: a horizontal policy's ScalingState, a NodePool one's NodePoolMemory
    state: Optional[scaling.ScalingState | NodePoolMemory]



def decide(policy: CustomObject, spec: ScalingPolicySpec | str, figures: Optional[PolicyFigures],
           problem: Optional[tuple[str, str]], owner: Ownership,
           state: Optional[scaling.ScalingState], previous: Mapping, now: float,
           hold: Optional[BudgetHold] = None) -> PolicyDecision:
    """`hold`: the Quota with `budget.action: Block` whose scope holds the policy's namespace."""
    before = list(previous.get("conditions") or [])
    generation = policy.generation
    blocked = hold is not None and hold.exceeded
    # copies, written back with this decision's status when a time in them was unreadable
    timed = {key: dict(previous[key]) for key in TIMED_RECORDS if previous.get(key)}
    unreadable = [event for key, record in timed.items()
                  for event in restart_unreadable(record, "time", f"{key}.time", now, TIMED_RECORDS[key])]
    previous = {**previous, **timed}

    def finish(conditions, extra=None, action=None, new_state=state):
        conditions = budget_condition(conditions, hold, generation)
        status = {"observedGeneration": generation, **(timed if unreadable else {}), **(extra or {}),
                  "conditions": conditions}
        events = [as_event(c) for c in changed(before, conditions)] + unreadable
        if action is not None:
            status["lastAction"] = {"action": action.describe(), "time": rfc3339(now)}
            events.append((action.event_reason, status["lastAction"]["action"], False))
        return PolicyDecision(status, events, action, new_state)

    if isinstance(spec, str):
        return finish(set_condition(before, "Ready", False, "InvalidSpec", spec, generation))
    custom = sorted({s.type for s in spec.signals if s.type in CUSTOM_SIGNALS})
    if custom and spec.mode is ScalingMode.VERTICAL:
        return finish(set_condition(before, "Ready", False, "UnsupportedSignal", (
            f"a Vertical policy sets cpu and memory requests, and a {' or '.join(custom)} signal has no "
            f"request to set: use cpu and memory signals, or mode Reactive or Predictive"), generation))
    if owner.conflict is not None:
        return finish(set_condition(before, "Ready", False, "Conflict", owner.conflict, generation))
    if problem is not None or figures is None:
        reason, message = problem or ("NoSamples", "no usage of the target yet")
        conditions = set_condition(before, "MetricsAvailable", False, reason, message, generation)
        return finish(set_condition(conditions, "Ready", False, "WaitingForMetrics",
                                    "no recommendation and no action without fresh metrics", generation))
    stale = [s.name for s in figures.signals if s.demand is None]
    conditions = set_condition(before, "MetricsAvailable", not stale,
                               "SamplesFresh" if not stale else "NoSamples",
                               f"usage up to {rfc3339(figures.metrics_time)}" if not stale
                               else f"no fresh sample of {', '.join(stale)} for {spec.target_ref.name}", generation)
    if stale:
        return finish(set_condition(conditions, "Ready", False, "WaitingForMetrics",
                                    "no recommendation and no action without fresh metrics", generation))

    settings = resolve_settings(spec, figures.pool)
    if spec.mode is ScalingMode.VERTICAL:
        return finish(*_vertical(policy, spec, figures, settings, conditions, previous, now, blocked))
    untargeted = [s for s in figures.signals if not s.target_per_replica]
    if untargeted:
        fallback = "" if all(s.query for s in untargeted) else " or the pods' requests"
        return finish(set_condition(conditions, "Ready", False, "NoTarget",
                                    f"no per-replica target for {', '.join(s.name for s in untargeted)}: set "
                                    f"the signal's target{fallback}", generation))
    rules = scaling.ScalingRules.from_spec(spec.model_dump(by_alias=True, mode="json"), settings.parameters,
                                           step_seconds=figures.step_seconds)
    # the replicas in place are what the cluster runs now, whatever the last decision said
    state = replace(state or _restored_state(previous, figures.replicas, now), replicas=figures.replicas)
    decisions = [scaling.decide_replicas(rules, state, now, s.demand, s.target_per_replica, s.forecast,
                                         s.confidence, signal=s.signal, median=s.median) for s in figures.signals]
    chosen = max(decisions, key=lambda d: d.replicas)  # the signal that needs most replicas rules
    main = figures.signals[decisions.index(chosen)]
    horizon = rules.horizon_steps
    picks = np.unique(np.linspace(0, horizon - 1, min(FORECAST_POINTS, horizon)).round().astype(int))
    extra = {
        "currentReplicas": figures.replicas,
        "settings": settings.status(),
        "recommendation": {"replicas": chosen.replicas},
        "confidence": round(float(main.confidence), 3),
        "reasoning": chosen.reasoning,
        "forecast": [float(f"{v:.4g}") for v in main.forecast[:horizon][picks]],
    }
    # A Predictive policy acts on its forecast only: below the threshold it recommends
    # reactively and leaves the HPA as it is, which keeps scaling on cpu by itself.
    distrusted = spec.mode is ScalingMode.PREDICTIVE and main.confidence < spec.confidence_threshold
    if distrusted:
        conditions = set_condition(conditions, "Ready", True, "LowConfidence", (
            f"forecast confidence {main.confidence:.2f} below {spec.confidence_threshold:.2f}: "
            f"{chosen.replicas} replicas recommended reactively, no action"), generation)
    else:
        conditions = set_condition(conditions, "Ready", True, "Recommending",
                                   f"{chosen.basis}: {chosen.replicas} replicas", generation)
    action = None
    held = owner.hpa
    acting = chosen.basis != "held" and not distrusted
    # blocked, the HPA's ceiling comes down to what runs even when the policy would leave
    # the HPA alone: the HPA controller would otherwise scale up on cpu by itself; and it
    # goes back to the spec's once nothing holds it, acting or not
    lowered = held is not None and held.policy == policy.name and held.max_replicas != spec.max_replicas
    if spec.update_mode is not UpdateMode.OFF and (blocked or acting or lowered):
        floor, ceiling = max(chosen.replicas, spec.min_replicas, 1), spec.max_replicas
        if not (blocked or acting):  # only the ceiling goes back: the floor stays where it is
            floor = min(max(held.min_replicas or 1, spec.min_replicas, 1), ceiling)
        if blocked:
            # what the target is set to (its pods while its template is not seen): a pod
            # that restarts does not lower the ceiling
            now_set = figures.template.replicas if figures.template is not None else figures.replicas
            floor, ceiling = budget.held_replica_bounds(now_set, floor, ceiling)
        bounds = ReplicaBounds(
            namespace=policy.namespace, hpa_name=owner.hpa_name, target_kind=spec.target_ref.kind,
            target_name=spec.target_ref.name, min_replicas=floor, max_replicas=ceiling, owner=policy.reference)
        # desired against observed: an HPA that holds these bounds needs nothing
        if held is None or held.policy != policy.name or (held.min_replicas, held.max_replicas) != (
                bounds.min_replicas, bounds.max_replicas):
            action = bounds
    return finish(conditions, extra, action, chosen.state)


def budget_condition(conditions: list[dict], hold: Optional[BudgetHold], generation: int) -> list[dict]:
    """`ScalingAllowed` while a Quota with `budget.action: Block` covers the policy: False
    while that Quota is over its budget, True (and why) otherwise; none when no such Quota does."""
    if hold is None:
        return [c for c in conditions if c["type"] != "ScalingAllowed"]
    quota = f"Quota {hold.quota} (budget.action Block)"
    message = {
        budget.EXCEEDED: f"Quota {hold.quota} is over its budget ({hold.message}) and its budget.action is Block: "
                         f"no scaling up (scaling down is allowed) until its spend is within the budget",
        budget.WITHIN: f"{quota} is within its budget",
        budget.SPEND_UNKNOWN: f"{quota}: its spend is not known yet (see its CostAvailable); scaling is allowed "
                              f"until it is over its budget",
        budget.CURRENCY_MISMATCH: f"{quota} does not compare its spend with its budget ({hold.message}), so it "
                                  f"holds nothing: set its budget.currency to the price table's",
        budget.NO_LIMIT: f"{quota} has neither budget.daily nor budget.monthly, so it holds nothing: set one, or "
                         f"take budget.action Block away",
    }[hold.reason]
    return set_condition(conditions, "ScalingAllowed", not hold.exceeded, hold.reason, message, generation)


def _vertical(policy: CustomObject, spec: ScalingPolicySpec, figures: PolicyFigures, settings: Settings,
              conditions: list[dict], previous: Mapping, now: float,
              blocked: bool = False) -> tuple[list[dict], dict, Optional[TemplateRequests | PodResize]]:
    """Per-pod requests from the per-pod share of the target's forecast and recent peak
    (its pods share a template), shared among the containers, and the action that puts
    them in place: the pod template (Auto) or the running pods (InPlace). `blocked` (a
    Quota's budget): no request is raised above the one in place."""
    generation = policy.generation
    rules = vertical.RequestRules.from_strategy(settings.parameters)
    pods = max(figures.replicas, 1)
    horizon = max(1, math.ceil(settings.parameters.horizon_seconds / figures.step_seconds))
    oom = _oom_kill(figures, previous, pods, now)
    decisions = []
    for s in figures.signals:
        peak = None if s.recent_peak is None else s.recent_peak / pods
        raised = s.signal == "memory" and oom is not None
        if raised:
            peak = max(peak or 0.0, to_float(oom["podPeak"]))
        decisions.append(vertical.decide_request(rules, s.signal, s.forecast[:horizon] / pods, peak,
                                                 oom_killed=raised))
    per_pod = {d.resource: d.request for d in decisions}
    extra = {"currentReplicas": figures.replicas, "settings": settings.status(),
             "recommendation": {"requests": {r: _request(r, v) for r, v in per_pod.items()}},
             "confidence": round(min(float(s.confidence) for s in figures.signals), 3),
             "reasoning": "; ".join(d.reasoning for d in decisions)}
    if oom is not None:
        extra["lastOomKill"] = oom

    def ready(reason: str, message: str, action=None):
        return set_condition(conditions, "Ready", True, reason, message, generation), extra, action

    current = figures.template.containers if figures.template is not None else (
        figures.pods[0][1] if figures.pods else ())
    if not current:
        return ready("RecommendOnly", f"requests recommended per pod; no pod or template of "
                                      f"{spec.target_ref.name} seen to share them among its containers")
    proposed = {name: {r: request_precision(r, v) for r, v in requests.items()}
                for name, requests in vertical.split_requests(per_pod, [(c.name, c.requests) for c in current]).items()}
    extra["recommendation"]["containers"] = [{"name": name, "requests": {r: _request(r, v) for r, v in requests.items()}}
                                             for name, requests in proposed.items()]
    if len(current) > 1:
        extra["reasoning"] += "; shared among the containers as their requests are now"
    if blocked:  # the recommendation stands in status; what is applied raises no request
        proposed = budget.held_requests(_by_name(current), proposed)
    if spec.update_mode is UpdateMode.OFF:
        return ready("RecommendOnly", "updateMode Off: requests are recommended, not applied")
    if extra["confidence"] < spec.confidence_threshold and not figures.oom_killed:
        return ready("LowConfidence", f"forecast confidence {extra['confidence']:.2f} below "
                                      f"{spec.confidence_threshold:.2f}: requests recommended, not applied")
    if spec.update_mode is UpdateMode.AUTO:
        if figures.template is None:
            return set_condition(conditions, "Ready", False, "TargetNotFound",
                                 f"{spec.target_ref.kind} {policy.namespace}/{spec.target_ref.name} not found",
                                 generation), extra, None
        if not figures.template.rolled_out:
            return ready("RollingOut", f"{spec.target_ref.kind} {spec.target_ref.name} is rolling out; "
                                       f"requests are changed again once it has")
        baseline, resized = _by_name(current), ()
        due = vertical.worth_updating(baseline, proposed, oom_killed=figures.oom_killed)
    else:
        resizing, kept = [], []
        for pod, containers in figures.pods:
            requests = _by_name(containers)
            if vertical.worth_updating(requests, proposed, oom_killed=figures.oom_killed):
                # blocked, a pod whose request lags below the held one keeps its own:
                # resizing it to the others' would raise its charge
                (kept if blocked and vertical.raises(requests, proposed) else resizing).append(pod)
        resized = tuple(resizing)
        baseline = _by_name(dict(figures.pods)[resized[0]]) if resized else {}
        due = bool(resized)
        if kept:
            extra["reasoning"] += (f"; {', '.join(kept)} keep their requests: the budget's hold allows "
                                   f"no pod a higher one")
    if not due:
        return ready("UpToDate", f"the requests in place are within {vertical.UPDATE_TOLERANCE:.0%} "
                                 f"of the recommendation{', as far as the budget allows' if blocked else ''}")
    cooldown = (spec.scale_up if vertical.raises(baseline, proposed) else spec.scale_down).cooldown_seconds
    last = (previous.get("lastAction") or {}).get("time")
    since = seconds_since(last, now)
    if since is not None and since < cooldown and not figures.oom_killed:
        return ready("CoolingDown", f"requests last changed at {last}; the next change waits "
                                    f"{cooldown} s from then")
    containers = tuple(ContainerRequests(name, requests) for name, requests in proposed.items())
    action = (TemplateRequests(policy.namespace, spec.target_ref.kind, spec.target_ref.name, containers)
              if spec.update_mode is UpdateMode.AUTO else PodResize(policy.namespace, resized, containers))
    return ready("Updating", f"requests set to the recommendation ({action.actuator})", action)


def _oom_kill(figures: PolicyFigures, previous: Mapping, pods: int, now: float) -> Optional[dict]:
    """The OOMKill memory is raised for: one seen now in the target's pods, or the last one
    recorded in status, for a day after it (new pods no longer show it in their last state,
    and memory must not fall back to the peak that was killed)."""
    memory = next((s for s in figures.signals if s.signal == "memory"), None)
    recorded = previous.get("lastOomKill") or {}
    since = seconds_since(recorded.get("time"), now)
    try:
        recorded_peak = to_float(recorded.get("podPeak"))
    except (TypeError, ValueError):  # edited into something that is not a quantity: no record
        since = None
    if figures.oom_killed and memory is not None and memory.recent_peak is not None:
        peak = memory.recent_peak / pods
        if since is not None and since < OOM_MEMORY_SECONDS:
            peak = max(peak, recorded_peak)
        return {"time": rfc3339(now), "podPeak": _request("memory", peak)}
    if since is not None and since < OOM_MEMORY_SECONDS:
        return dict(recorded)
    return None


def _by_name(containers) -> dict[str, dict[str, float]]:
    return {c.name: dict(c.requests) for c in containers}


def _request(resource: str, amount: float) -> str:
    return format_quantity(resource, request_precision(resource, amount))


def _restored_state(previous: Mapping, replicas: int, now: float) -> scaling.ScalingState:
    """After a restart: the last recorded action starts both cooldowns (which way it went
    is not recorded), so a restarted operator does not act again at once."""
    since = seconds_since((previous.get("lastAction") or {}).get("time"), now)
    if since is None:
        return scaling.ScalingState.initial(replicas)
    return scaling.ScalingState(replicas, last_scale_up=now - since, last_scale_down=now - since)


def signal_source(signal: models.Signal) -> tuple[str, Optional[str]]:
    """What a signal reads: its type, and a custom signal's query (None for cpu, memory)."""
    return signal.type, signal.query if signal.type in CUSTOM_SIGNALS else None


def custom_queries(spec: ScalingPolicySpec) -> list[str]:
    """The PromQL queries a policy's custom signals read (a Vertical policy reads none)."""
    if spec.mode is ScalingMode.VERTICAL:
        return []
    return list(dict.fromkeys(query for _, query in map(signal_source, spec.signals) if query is not None))


def query_problem(spec: ScalingPolicySpec,
                  failures: Mapping[str, MetricsUnavailable]) -> Optional[tuple[str, str]]:
    """Why a policy has no figures when one of its queries failed or answered with nothing:
    the first failed query's reason, and a message naming each failed query."""
    failed = {source: failures[source[1]] for source in map(signal_source, spec.signals) if source[1] in failures}
    if not failed:
        return None
    return next(iter(failed.values())).reason, "; ".join(
        f"{signal} query `{query}`: {failure}" for (signal, query), failure in failed.items())


def target_per_replica(source: tuple[str, Optional[str]], spec: ScalingPolicySpec,
                       request: Optional[float]) -> Optional[float]:
    """The spec's per-replica target for the signal (`signal_source`), else one pod's
    request of it (a custom signal has none)."""
    configured = next((s.target for s in spec.signals if signal_source(s) == source and s.target is not None), None)
    if configured is not None:
        return to_float(configured)
    return request if source[1] is None else None

