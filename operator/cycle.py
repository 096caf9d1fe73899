"""The control cycle: observe → forecast → decide → act → report, once for every object.

One cycle per resync (and when the cluster or an object changes, debounced) does for all
objects at once what per-object loops would each redo: one Prometheus pull per signal for
every workload any object needs, one `forecast_many` over every series, then each kind's
pure decide step. `compute` is synchronous and does no Kubernetes I/O (the operator runs
it on a thread, so the event loop and the liveness probe stay responsive); `run` adds the
report and act stages: status patches when something changed (an action is recorded in
status before it is taken), Events, then the actions through providers.

Series forecast each cycle: the cpu and memory of every workload a pool or a policy
needs, each pool's aggregate (its member workloads' usage summed, a workload counted
by the share of its pods in the pool), and the total of each custom signal's query. A
pool's forecast is its aggregate's own: quantiles do not add up.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Hashable, Mapping, Optional

import numpy as np
from kubernetes.client import ApiException

from quartermaster.operator import nodepools, quota, report, resourcepool, scalingpolicy, swapplan
from quartermaster.operator.accounting import PodRecord, PoolSummary, summarise
from quartermaster.operator.conditions import as_event, changed, set_condition
from quartermaster.operator.cost import CostData, CostObserver, WasteReport, allocation_answer, waste_report
from quartermaster.operator.forecast_tracking import ForecastTracker
from quartermaster.operator.kube import api_client
from quartermaster.operator.models import (Quota, ResourcePool, ResourcePoolSpec, ScalingMode, ScalingPolicy,
                                           ScalingPolicySpec, SwapPhase, SwapPlan, SwapPlanSpec)
from quartermaster.operator.observe import SIGNALS, ClusterSnapshot, CustomObject, UsageObserver
from quartermaster.operator.prometheus_reader import MetricsUnavailable, PrometheusReader
from quartermaster.operator.resourcepool import ResourceFigures, UsageFigures
from quartermaster.operator.scalingpolicy import NODE_POOL, Ownership, PolicyFigures, PoolStrategy, SignalFigures
from quartermaster.operator.settings import OperatorSettings
from quartermaster.operator.telemetry import Telemetry
from quartermaster.operator.usage_history import latest
from quartermaster.operator.workloads import WorkloadKey, WorkloadTemplate
from quartermaster.planner.budget import BudgetHold
from quartermaster.planner.pools import strategy_parameters
from quartermaster.planner.priority import Standing
from quartermaster.planner.reservations import ReservedScope
from quartermaster.predictors import Forecasts, forecast_many_detailed
from quartermaster.providers.evictions import EVICTED, FAILED, REFUSED, PodEvicter, PodEvictions, outcome_of
from quartermaster.providers.hpa import HorizontalPodAutoscalers, ReplicaBounds
from quartermaster.providers.interface import ProviderError
from quartermaster.providers.node_pools import NodePoolObservation, NodePoolProviders, NodePoolSize
from quartermaster.providers.priority_classes import PriorityClasses, PriorityClassWriter
from quartermaster.providers.quotas import QuotaObjects, QuotaObjectWriter
from quartermaster.providers.requests import PodResize, TemplateRequests, WorkloadRequests

logger = logging.getLogger(__name__)
MEDIAN = 0.5
WORKLOAD_UPPER = 0.9  # the quantile workloads' live accuracy is scored on
# actions_total's result of an eviction; a pod gone already is not counted
EVICTION_RESULTS = {EVICTED: "applied", REFUSED: "refused", FAILED: "failed"}


@dataclass(frozen=True)
class Outcome:
    """One object's decision: its new status, the Events to file, and the action (if any)."""

    plural: str
    obj: CustomObject
    decision: object  # resourcepool.PoolDecision | scalingpolicy.PolicyDecision | swapplan.SwapDecision


@dataclass
class CycleResult:
    pools: list[Outcome]
    policies: list[Outcome]
    plans: list[Outcome]
    workloads: int
    metrics_error: Optional[MetricsUnavailable]
    timings: dict[str, float] = field(default_factory=dict)
    quotas: list[Outcome] = field(default_factory=list)
    priority_classes: Optional[PriorityClasses] = None  # the operator's PriorityClasses to apply


@dataclass
class _Observed:
    """What each object needs of the cluster: pools' members (and each workload's share of
    its pods in the pool), policies' targets and who owns their HPA."""

    pool_specs: dict[str, ResourcePoolSpec | str]
    summaries: dict[str, PoolSummary]
    shares: dict[str, dict[WorkloadKey, float]]
    policy_specs: dict[str, ScalingPolicySpec | str]
    targets: dict[str, WorkloadKey]  # valid policies' targets
    owners: dict[str, Ownership]
    policy_pools: dict[str, PoolStrategy]  # valid policies whose target is in a pool: the pool's strategy
    node_pool_targets: dict[str, str]  # valid NodePool policies whose ResourcePool is valid: its uid
    pods_of: Counter
    pod_requests: dict[WorkloadKey, dict[str, float]]
    target_pods: dict[WorkloadKey, list[PodRecord]]
    templates: dict[WorkloadKey, WorkloadTemplate]
    plan_specs: dict[str, SwapPlanSpec | str]
    plan_pools: dict[str, str]  # valid plans' pools' uids

    @property
    def workloads(self) -> list[WorkloadKey]:
        return sorted({w for shares in self.shares.values() for w in shares} | set(self.targets.values()))

    @property
    def queries(self) -> list[str]:
        """Every distinct query of the policies' custom signals."""
        return sorted({q for uid in self.targets for q in scalingpolicy.custom_queries(self.policy_specs[uid])})

    @property
    def sized(self) -> list[str]:
        """The policies whose settings the forecast serves: workloads' and node pools'."""
        return [*self.targets, *self.node_pool_targets]

    def settings(self, uid: str) -> scalingpolicy.Settings:
        """A valid policy's quantile and horizon: its own, else its pool's."""
        return scalingpolicy.resolve_settings(self.policy_specs[uid], self.policy_pools.get(uid))


@dataclass(frozen=True)
class _ForecastBook:
    """Every series of the cycle, its latest value and its forecast, by key."""

    keys: list[Hashable]
    series: Optional[np.ndarray]  # [n, T]; None in the book kept for the REST API (`published`)
    timestamps: np.ndarray
    end: float
    step: int
    forecasts: Forecasts
    now_values: np.ndarray
    age: np.ndarray  # steps back to the latest value, -1 when stale
    rows: dict[Hashable, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {k: i for i, k in enumerate(self.keys)})

    def current(self, key: Hashable) -> Optional[float]:
        i = self.rows[key]
        return None if self.age[i] < 0 else float(self.now_values[i])

    def published(self) -> _ForecastBook:
        """The book as the REST API reads it until the next cycle: without the series, which
        only this cycle's decisions read (float32 [n, T], 154 MiB at 10,000 workloads: kept,
        it was held twice while the next cycle built its own)."""
        return replace(self, series=None)


class ControlCycle:
    def __init__(self, settings: OperatorSettings, reader: Optional[PrometheusReader] = None,
                 telemetry: Optional[Telemetry] = None) -> None:
        self.settings = settings
        if reader is None and settings.metrics.prometheus_url:
            reader = PrometheusReader(settings.metrics)
        self.usage = UsageObserver(settings.metrics, reader)
        self.cost = CostObserver(settings.metrics, settings.price_table, reader)
        self.tracker = ForecastTracker()
        self.telemetry = telemetry or Telemetry()
        self._specs: dict[tuple[str, int], object] = {}  # parsed once per (uid, generation)
        # uid -> the status last written: what transitions are decided against, so a
        # write that failed is decided (and its Events filed) again by the next cycle
        self._written: dict[str, dict] = {}
        # policy uid -> planner.scaling.ScalingState, or a NodePool policy's NodePoolMemory
        self._scaling_state: dict[str, object] = {}
        self.node_pools = NodePoolProviders(settings.providers)
        self._node_pool_results: dict[str, nodepools.ActResult] = {}  # policy uid -> how its last size went
        self._forecast_cache: Optional[tuple] = None  # (what was asked, forecasts)
        # the last cycle's view, which the REST API answers from
        self.latest_snapshot: Optional[ClusterSnapshot] = None
        self.latest_book: Optional[_ForecastBook] = None
        # the last cost read, or why there is none; each live pod's workload and pool
        self.latest_cost: CostData | tuple[str, str] = ("NotReadYet", "no cost read yet")
        self.latest_pods: tuple[dict, dict] = ({}, {})
        # (the cost grid it is of, the workloads running then, its findings)
        self._waste_cache: Optional[tuple[np.ndarray, frozenset, WasteReport]] = None

    # ---- compute: observe, forecast, decide (no Kubernetes I/O) ---------------------

    def compute(self, snapshot: ClusterSnapshot, now: float,
                node_pools: Mapping[str, NodePoolObservation] = {}) -> CycleResult:
        """`node_pools`: what providers said this cycle of NodePool policies' pools, by policy uid."""
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        observed = self._observe(snapshot)
        workloads = observed.workloads
        error, failed_queries = None, {}
        if workloads:
            try:
                self.usage.pull(snapshot.pods, workloads, now)
                failed_queries = self.usage.pull_queries(observed.queries, now)
            except MetricsUnavailable as failure:
                error = failure
                self.telemetry.query_errors.labels(failure.reason).inc()
                logger.warning("usage not read: %s", failure)
        for query, failure in failed_queries.items():
            self.telemetry.query_errors.labels(failure.reason).inc()
            logger.warning("custom signal query %s not read: %s", query, failure)
        names = {p.uid: p.name for p in snapshot.pools}
        cost = self._read_cost(snapshot, observed, names, now) if snapshot.quotas or self.settings.api_port else None
        timings["observe"], clock = time.perf_counter() - clock, time.perf_counter()

        book = None if error or not workloads else self._forecast(observed, workloads)
        self.latest_snapshot, self.latest_book = snapshot, book.published() if book else self.latest_book
        timings["forecast"], clock = time.perf_counter() - clock, time.perf_counter()

        problem = None if error is None else (error.reason, self._unavailable_message(error, now))
        pools = [Outcome(ResourcePool.plural, pool, resourcepool.decide(
            pool, observed.pool_specs[pool.uid], observed.summaries.get(pool.uid),
            len(observed.shares.get(pool.uid, {})),
            None if book is None or pool.uid not in observed.shares else self._pool_figures(book, observed, pool, names),
            problem, self._written.get(pool.uid, pool.status), now)) for pool in snapshot.pools]
        scopes = {q.name: (spec, quota.figures(q, spec, snapshot))
                  for q in snapshot.quotas for spec in [self._parse(q, quota.parse_spec)]}
        standings, loans = quota.standings(scopes), quota.loans(scopes, now)
        quotas = []
        waste = self._waste(cost) if snapshot.quotas else None  # only Quotas show findings
        for obj in snapshot.quotas:
            spec, scope = scopes[obj.name]
            quotas.append(Outcome(Quota.plural, obj, quota.decide(
                obj, spec, scope, self._written.get(obj.uid, obj.status), now, quota.cost_figures(scope, cost),
                loans[obj.name], waste)))
        # Quotas first: a Quota over its budget with budget.action Block holds the policies in its scope
        holds = quota.budget_holds({o.obj.name: (*scopes[o.obj.name], o.decision.status) for o in quotas})
        policies = []
        for policy in snapshot.policies:
            spec = observed.policy_specs[policy.uid]
            if not isinstance(spec, str) and spec.target_ref.kind == NODE_POOL:
                decision = self._decide_node_pool(policy, spec, snapshot, observed, book, names, problem,
                                                  node_pools.get(policy.uid), now, holds.get(policy.namespace))
                self._scaling_state[policy.uid] = decision.state
                policies.append(Outcome(ScalingPolicy.plural, policy, decision))
                continue
            decision = scalingpolicy.decide(
                policy, spec, None if book is None else self._policy_figures(book, observed, policy),
                problem or (None if isinstance(spec, str) else scalingpolicy.query_problem(spec, failed_queries)),
                observed.owners.get(policy.uid, Ownership(None)),
                self._scaling_state.get(policy.uid), self._written.get(policy.uid, policy.status), now,
                holds.get(policy.namespace))
            if decision.state is not None:
                self._scaling_state[policy.uid] = decision.state
            policies.append(Outcome(ScalingPolicy.plural, policy, decision))
        reserved = quota.reserved_scopes(scopes, now)
        plans = [Outcome(SwapPlan.plural, plan, swapplan.decide(
            plan, observed.plan_specs[plan.uid],
            None if book is None or plan.uid not in observed.plan_pools
            else self._swap_figures(book, observed, plan, standings, reserved),
            self._cluster_state(observed, plan, now), problem, self._written.get(plan.uid, plan.status), now))
            for plan in snapshot.plans]
        self._forget({o.uid for o in (*snapshot.pools, *snapshot.policies, *snapshot.plans, *snapshot.quotas)},
                     set(names.values()))
        timings["decide"] = time.perf_counter() - clock

        self.telemetry.workloads.set(len(workloads))
        if self.usage.last_success is not None:
            self.telemetry.metrics_age.set(now - self.usage.last_success)
        return CycleResult(pools, policies, plans, len(workloads), error, timings, quotas,
                           quota.priority_classes_to_apply(snapshot.priority_classes))

    def _read_cost(self, snapshot: ClusterSnapshot, observed: _Observed, names: dict[str, str],
                   now: float) -> CostData | tuple[str, str]:
        """The cost grid of every namespace (once a cycle, for the Quotas and /cost), or why not."""
        try:
            self.latest_cost = self.cost.read(snapshot.pods, {n.name: n.labels for n in snapshot.nodes},
                                              sorted(snapshot.namespace_labels), now)
        except MetricsUnavailable as failure:
            self.telemetry.query_errors.labels(failure.reason).inc()
            self.latest_cost = (failure.reason, f"no cost figures: {failure}")
        self.latest_pods = ({(p.namespace, p.name): p.owner for p in snapshot.pods if p.owner is not None},
                            {(p.namespace, p.name): names[uid] for uid, s in observed.summaries.items()
                             for p in s.member_pods})
        return self.latest_cost

    def _waste(self, cost: CostData | tuple[str, str] | None) -> Optional[WasteReport]:
        """The waste findings of the cost grid's last week, worked out again only when the
        cost observer pulls the grid again (once an hour at the default cost step, and each
        cycle while its newest step settles) or a workload runs that was not (its pods'
        history is its own from then on); None without a cost read."""
        if not isinstance(cost, CostData) or not len(cost.timestamps):
            return None
        live = self.latest_pods[0]
        workloads = frozenset(live.values())
        # the grid by identity: the cost observer hands out the very arrays it keeps
        if self._waste_cache is None or self._waste_cache[0] is not cost.requests or self._waste_cache[1] != workloads:
            self._waste_cache = (cost.requests, workloads, waste_report(cost, live))
        return self._waste_cache[2]

    def cost_answer(self, window: str, aggregate: str) -> dict | str:
        """/cost's answer from the last cost read (ValueError for bad input), or why there is none."""
        if isinstance(self.latest_cost, tuple):
            return self.latest_cost[1]
        return allocation_answer(self.latest_cost, *self.latest_pods, window, aggregate)

    def _parse(self, obj: CustomObject, parse) -> object:
        key = (obj.uid, obj.generation)
        if key not in self._specs:
            self._specs[key] = parse(obj)
        return self._specs[key]

    def _observe(self, snapshot: ClusterSnapshot) -> _Observed:
        pods_of = snapshot.pods_per_workload
        pool_specs, summaries, shares = {}, {}, {}
        for pool in snapshot.pools:
            spec = pool_specs[pool.uid] = self._parse(pool, resourcepool.parse_spec)
            if isinstance(spec, str):
                continue
            summary = summaries[pool.uid] = summarise(spec, snapshot.nodes, snapshot.pods, snapshot.namespace_labels)
            members = Counter(p.owner for p in summary.member_pods if p.owner is not None)
            shares[pool.uid] = {w: n / pods_of[w] for w, n in members.items()}
        policy_specs = {p.uid: self._parse(p, scalingpolicy.parse_spec) for p in snapshot.policies}
        parsed = [(p, policy_specs[p.uid]) for p in snapshot.policies if not isinstance(policy_specs[p.uid], str)]
        valid = [(p, spec) for p, spec in parsed if spec.target_ref.kind != NODE_POOL]
        owners = {p.uid: scalingpolicy.ownership(p, spec, valid, snapshot.hpas, snapshot.vpas) for p, spec in valid}
        targets = {p.uid: scalingpolicy.target_of(p, spec) for p, spec in valid}
        # a target in more than one pool takes the strategy of the one holding most of its
        # pods (by name on a tie)
        names = {p.uid: p.name for p in snapshot.pools}

        def strategy_of(pool: str) -> PoolStrategy:
            strategy = pool_specs[pool].strategy.value
            return PoolStrategy(names[pool], strategy, strategy_parameters(strategy, self._lowest_coverage(pool)))
        policy_pools = {}
        for uid, target in targets.items():
            holding = [pool for pool, share in shares.items() if target in share]
            if holding:
                policy_pools[uid] = strategy_of(min(holding, key=lambda p: (-shares[p][target], names[p])))
        # a NodePool policy's ResourcePool is the one it names, and sets what it leaves unset
        pool_uids = {p.name: p.uid for p in snapshot.pools if p.uid in summaries}
        node_pool_targets = {p.uid: pool_uids[spec.target_ref.name] for p, spec in parsed
                             if spec.target_ref.kind == NODE_POOL and spec.target_ref.name in pool_uids}
        policy_pools |= {uid: strategy_of(pool) for uid, pool in node_pool_targets.items()}
        wanted = set(targets.values())
        target_pods: dict[WorkloadKey, list[PodRecord]] = {}
        for pod in snapshot.pods:
            if pod.owner in wanted:
                target_pods.setdefault(pod.owner, []).append(pod)
        plan_specs = {p.uid: self._parse(p, swapplan.parse_spec) for p in snapshot.plans}
        plan_pools = {uid: pool_uids[spec.pool_ref.name] for uid, spec in plan_specs.items()
                      if not isinstance(spec, str) and spec.pool_ref.name in pool_uids}
        return _Observed(pool_specs, summaries, shares, policy_specs, targets, owners, policy_pools, node_pool_targets,
                         pods_of, _requests_per_pod(snapshot.pods), target_pods, snapshot.templates(), plan_specs,
                         plan_pools)

    def _forecast(self, observed: _Observed, workloads: list[WorkloadKey]) -> _ForecastBook:
        """One forecast over every workload's and every pool's series."""
        step = self.settings.metrics.step_seconds
        pools = list(observed.shares)
        params = {uid: strategy_parameters(observed.pool_specs[uid].strategy.value,
                                           self._lowest_coverage(uid)) for uid in pools}
        policy_settings = [observed.settings(uid).parameters for uid in observed.sized]
        plan_specs = [observed.plan_specs[uid] for uid in observed.plan_pools]
        column = {w: i for i, w in enumerate(workloads)}
        members = [(np.array([column[w] for w in observed.shares[uid]], dtype=np.int64),
                    np.array(list(observed.shares[uid].values()))) for uid in pools]
        history = self.usage.histories[SIGNALS[0]]
        timestamps, end = history.timestamps, history.end
        queries = observed.queries
        # every signal's workload rows, then its pool rows, then the custom queries' totals,
        # filled in place, in float32 as the histories are (10,000 workloads' week is 80 MB
        # a signal)
        block = len(workloads) + len(pools)
        series = np.empty((len(SIGNALS) * block + len(queries), history.length), dtype=np.float32)
        keys: list[Hashable] = []
        upper_levels = []
        for s, signal in enumerate(SIGNALS):
            rows = series[s * block:(s + 1) * block]
            self.usage.histories[signal].matrix(workloads, out=rows[:len(workloads)])
            rows[len(workloads):] = _pool_sums(rows[:len(workloads)], members)
            keys += [("workload", w, signal) for w in workloads] + [("pool", uid, signal) for uid in pools]
            upper_levels += [WORKLOAD_UPPER] * len(workloads) + [params[uid].quantile for uid in pools]
        self.usage.queries.matrix(queries, out=series[len(SIGNALS) * block:])
        keys += [("query", q) for q in queries]
        upper_levels += [WORKLOAD_UPPER] * len(queries)

        horizons = ([p.horizon_seconds for p in params.values()] + [p.horizon_seconds for p in policy_settings]
                    + [s.horizon_seconds for s in plan_specs])
        horizon = max((math.ceil(h / step) for h in horizons), default=1)
        quantiles = sorted({MEDIAN, WORKLOAD_UPPER, *(p.quantile for p in params.values()),
                            *(p.quantile for p in policy_settings), *(s.quantile for s in plan_specs)})
        # A forecast changes only with a new grid step (or other series): cycles between
        # steps (resyncs, pod events) reuse the last one.
        asked = (end, tuple(keys), tuple(upper_levels), horizon, tuple(quantiles))
        if self._forecast_cache is not None and self._forecast_cache[0] == asked:
            forecasts = self._forecast_cache[1]
        else:
            self.tracker.score(keys, timestamps, series)
            forecasts = forecast_many_detailed(series, step, horizon, quantiles)  # float32, widened a chunk at a time
            level = {q: i for i, q in enumerate(quantiles)}
            upper = forecasts.values[np.arange(len(keys)), [level[q] for q in upper_levels]]
            self.tracker.remember(end, step, forecasts.at(MEDIAN), upper)
            self._forecast_cache = (asked, forecasts)
        now_values, age = latest(series, self.settings.metrics.max_age_steps)
        return _ForecastBook(keys, series, timestamps, end, step, forecasts, now_values, age)

    def _pool_figures(self, book: _ForecastBook, observed: _Observed, pool: CustomObject,
                      names: dict[str, str]) -> UsageFigures:
        uid = pool.uid
        params = strategy_parameters(observed.pool_specs[uid].strategy.value, self._lowest_coverage(uid))
        resources = {}
        for signal in SIGNALS:
            key = ("pool", uid, signal)
            i = book.rows[key]
            accuracy = self.tracker.accuracy(key)
            resources[signal] = ResourceFigures(
                used=book.current(key), history=book.series[i], forecast=book.forecasts.at(params.quantile)[i],
                tier=book.forecasts.tier[i], model=book.forecasts.model[i],
                confidence=float(book.forecasts.confidence[i]), accuracy=accuracy)
            if accuracy.coverage is not None:
                self.telemetry.forecast_coverage.labels(names[uid], signal).set(accuracy.coverage)
                self.telemetry.forecast_scaled_error.labels(names[uid], signal).set(accuracy.scaled_error)
        missing = tuple(str(w) for w in observed.shares[uid]
                        if book.current(("workload", w, SIGNALS[0])) is None)
        used_per_pod = {w: {s: used / observed.pods_of[w] for s in SIGNALS
                            if (used := book.current(("workload", w, s))) is not None}
                        for w in observed.shares[uid]}
        return UsageFigures(resources, book.timestamps, book.step, book.end, missing, used_per_pod)

    def _policy_figures(self, book: _ForecastBook, observed: _Observed,
                        policy: CustomObject) -> Optional[PolicyFigures]:
        spec = observed.policy_specs[policy.uid]
        if isinstance(spec, str):
            return None
        target = observed.targets[policy.uid]
        requests = observed.pod_requests.get(target, {})
        quantile = observed.settings(policy.uid).parameters.quantile
        # a Vertical policy sizes both resources; a horizontal one scales on the signals it names
        sources = ([(signal, None) for signal in SIGNALS] if spec.mode is ScalingMode.VERTICAL
                   else dict.fromkeys(map(scalingpolicy.signal_source, spec.signals)))
        day = max(1, 86400 // book.step)
        signals = []
        for signal, query in sources:
            key = ("workload", target, signal) if query is None else ("query", query)
            i = book.rows[key]
            recent = book.series[i, -day:]
            signals.append(SignalFigures(
                signal=signal, demand=book.current(key),
                forecast=book.forecasts.at(quantile)[i], median=book.forecasts.at(MEDIAN)[i],
                confidence=float(book.forecasts.confidence[i]),
                target_per_replica=scalingpolicy.target_per_replica((signal, query), spec, requests.get(signal)),
                recent_peak=float(np.nanmax(recent)) if np.isfinite(recent).any() else None, query=query))
        pods = observed.target_pods.get(target, [])
        return PolicyFigures(observed.pods_of.get(target, 0), tuple(signals), book.step, book.end,
                             template=observed.templates.get(target),
                             pods=tuple((p.name, p.containers) for p in sorted(pods, key=lambda p: p.name)),
                             oom_killed=any(p.oom_killed for p in pods), pool=observed.policy_pools.get(policy.uid))

    def _decide_node_pool(self, policy: CustomObject, spec: ScalingPolicySpec, snapshot: ClusterSnapshot,
                          observed: _Observed, book: Optional[_ForecastBook], names: dict[str, str],
                          problem: Optional[tuple[str, str]], observation: Optional[NodePoolObservation],
                          now: float, hold: Optional[BudgetHold]) -> scalingpolicy.PolicyDecision:
        """A NodePool policy's decision on its ResourcePool's provider pool: the pool's nodes
        and pods from the snapshot, its members' forecast peak, and what the provider said."""
        uid = observed.node_pool_targets.get(policy.uid)
        pool = None if uid is None else (names[uid], observed.pool_specs[uid])
        figures = None
        if pool is not None and pool[1].provider_node_pool is not None:
            settings = observed.settings(policy.uid).parameters
            peak, seconds, confidence = None, 0.0, None
            if book is not None:
                rows = {s.type: book.rows[("pool", uid, s.type)] for s in spec.signals if s.type in SIGNALS}
                peak, seconds = nodepools.forecast_peak(
                    {r: book.forecasts.at(settings.quantile)[i] for r, i in rows.items()}, book.step,
                    settings.horizon_seconds)
                confidence = min((float(book.forecasts.confidence[i]) for i in rows.values()), default=None)
            figures = nodepools.pool_figures(pool[1].provider_node_pool.name, snapshot.nodes, snapshot.pods,
                                             observed.summaries[uid].member_pods, peak, seconds, confidence)
        return nodepools.decide(policy, spec, pool, figures, observation, observed.settings(policy.uid), problem,
                                self._node_pool_results.get(policy.uid), self._scaling_state.get(policy.uid),
                                self._written.get(policy.uid, policy.status), now, hold)

    def _swap_figures(self, book: _ForecastBook, observed: _Observed, plan: CustomObject,
                      standings: Mapping[str, Standing],
                      reserved: tuple[ReservedScope, ...]) -> Optional[swapplan.SwapFigures]:
        """The plan's pool: each whole member Deployment or StatefulSet with its requests
        (all replicas), usage and forecast peaks; what they may hold between them."""
        spec, pool = observed.plan_specs[plan.uid], observed.plan_pools[plan.uid]
        summary = observed.summaries[pool]
        horizon = max(1, math.ceil(spec.horizon_seconds / book.step))
        instances = []
        for workload, share in observed.shares[pool].items():
            template = observed.templates.get(workload)
            if template is None or share < 1 or template.replicas < 1:
                continue  # only a workload wholly in the pool is resized by its template
            rows = [book.rows[("workload", workload, r)] for r in swapplan.RESOURCES]
            used = [book.current(("workload", workload, r)) for r in swapplan.RESOURCES]
            if None in used:
                return None  # no plan on stale usage
            per_pod = [sum(c.requests.get(r, 0.0) for c in template.containers) for r in swapplan.RESOURCES]
            known = np.isfinite(book.series[rows]).all(axis=0)
            history = float(known.sum() * book.step)
            instances.append(swapplan.Instance(
                template, np.array(per_pod) * template.replicas, np.array(used),
                *(book.forecasts.at(q)[rows, :horizon].max(axis=1) for q in (spec.quantile, MEDIAN, WORKLOAD_UPPER)),
                history))
        held = np.array([sum(i.current[k] for i in instances) for k in range(len(swapplan.RESOURCES))])
        capacity = np.array([summary.capacity[r] - summary.requested[r] for r in swapplan.RESOURCES]) + held
        return swapplan.SwapFigures(capacity, tuple(instances), book.end, standings, reserved)

    def _cluster_state(self, observed: _Observed, plan: CustomObject, now: float) -> swapplan.ClusterState:
        spec = observed.plan_specs[plan.uid]
        guard = None
        executing = self._written.get(plan.uid, plan.status).get("phase") == SwapPhase.EXECUTING.value
        if executing and not isinstance(spec, str) and spec.rollback_guard is not None:
            guard = self._guard(spec.rollback_guard.query, now)
        return swapplan.ClusterState(plan.uid in observed.plan_pools, observed.templates, guard)

    def _guard(self, query: str, now: float) -> bool | str:
        """Whether the guard's query returns series now; why not known, as a str."""
        if self.usage.reader is None:
            return "no Prometheus to evaluate the rollback guard"
        try:
            return self.usage.reader.count(query, now) > 0
        except MetricsUnavailable as failure:
            return f"the rollback guard could not be evaluated: {failure}"

    def plan_statuses(self) -> dict[str, Mapping]:
        """Each SwapPlan's status as the last cycle decided it, by name."""
        return self._statuses(self.latest_snapshot.plans if self.latest_snapshot else [])

    def pool_statuses(self) -> dict[str, Mapping]:
        """Each ResourcePool's status as the last cycle decided it, by name."""
        return self._statuses(self.latest_snapshot.pools if self.latest_snapshot else [])

    def _statuses(self, objects: list[CustomObject]) -> dict[str, Mapping]:
        return {o.name: self._written.get(o.uid, o.status) for o in objects}

    def _lowest_coverage(self, uid: str) -> Optional[float]:
        known = [a.coverage for a in (self.tracker.accuracy(("pool", uid, s)) for s in SIGNALS)
                 if a.coverage is not None]
        return min(known) if known else None

    def _unavailable_message(self, error: MetricsUnavailable, now: float) -> str:
        last = self.usage.last_success
        kept = "no usage figures yet" if last is None else f"last good figures from {_age(now - last)} ago kept"
        return f"{error}; {kept}; no action is taken on them"

    def _forget(self, uids: set[str], pool_names: set[str]) -> None:
        """Drop what the cycle keeps of objects that are gone."""
        for cache in (self._written, self._scaling_state, self._node_pool_results):
            for uid in [u for u in cache if u not in uids]:
                del cache[uid]
        self._specs = {k: v for k, v in self._specs.items() if k[0] in uids}
        for gauge in (self.telemetry.forecast_coverage, self.telemetry.forecast_scaled_error):
            for labels in [labels for labels in _label_sets(gauge) if labels[0] not in pool_names]:
                gauge.remove(*labels)

    # ---- run: compute off the event loop, then report and act -----------------------

    async def run(self, snapshot: ClusterSnapshot) -> CycleResult:
        started = time.perf_counter()
        node_pools = await self._observe_node_pools(snapshot)
        result = await asyncio.to_thread(self.compute, snapshot, time.time(), node_pools)
        clock = time.perf_counter()
        # an action is taken only once its record is in status
        actions = [outcome for outcome in (*result.pools, *result.policies, *result.plans, *result.quotas)
                   if await self._publish(outcome) and outcome.decision.action is not None]
        result.timings["report"], clock = time.perf_counter() - clock, time.perf_counter()
        await self._act(actions)
        if result.priority_classes is not None:
            await self._apply_priority_classes(result.priority_classes)
        result.timings["act"] = time.perf_counter() - clock
        for stage, seconds in result.timings.items():
            self.telemetry.stage_seconds.labels(stage).observe(seconds)
        self.telemetry.cycle_seconds.observe(time.perf_counter() - started)
        return result

    async def _observe_node_pools(self, snapshot: ClusterSnapshot) -> dict[str, NodePoolObservation]:
        """What each NodePool policy's provider says of its pool now (observe, with I/O)."""
        pools = {p.name: self._parse(p, resourcepool.parse_spec) for p in snapshot.pools}
        observed = {}
        for policy in snapshot.policies:
            spec = self._parse(policy, scalingpolicy.parse_spec)
            if isinstance(spec, str) or spec.target_ref.kind != NODE_POOL:
                continue
            pool = pools.get(spec.target_ref.name)
            if isinstance(pool, ResourcePoolSpec) and pool.provider_node_pool is not None:
                observed[policy.uid] = await self.node_pools.observe(
                    pool.provider_node_pool.provider, pool.provider_node_pool.name,
                    self._provider_retry(policy.name, f"describing node pool {pool.provider_node_pool.name}"))
        return observed

    def _provider_retry(self, policy: str, what: str, retried: Optional[list[ProviderError]] = None):
        """The on_retry of a provider call for `policy`: logged, counted, and kept in `retried`."""
        def heard(error: ProviderError, wait: float) -> None:
            if retried is not None:
                retried.append(error)
            self.telemetry.actions.labels(NodePoolSize.actuator, "retried").inc()
            logger.info("%s: %s: %s; retried in %.1fs", policy, what, error, wait)
        return heard

    async def _resize_node_pool(self, outcome: Outcome, action: NodePoolSize) -> None:
        """Apply a node pool's size; how the provider took it (a drain blocked, a typed
        error) becomes the policy's Ready condition at once, and is decided on next cycle."""
        retried: list[ProviderError] = []
        try:
            pool = await self.node_pools.apply(action, self._provider_retry(outcome.obj.name, action.describe(),
                                                                            retried))
            result = nodepools.act_result(action, blocked=pool.blocked, retried=tuple(retried), answered_at=time.time())
            self.telemetry.actions.labels(action.actuator, "applied").inc()
        except ProviderError as error:
            result = nodepools.act_result(action, error=error, retried=tuple(retried), answered_at=time.time())
            self.telemetry.actions.labels(action.actuator, "failed").inc()
            logger.warning("%s: %s not applied: %s", outcome.obj.name, action.describe(), result.message)
        self._node_pool_results[outcome.obj.uid] = result
        status = outcome.decision.status
        conditions = set_condition(status["conditions"], "Ready", result.ready, result.reason, result.message,
                                   outcome.obj.generation)
        await report.publish(outcome.plural, outcome.obj, {**status, "conditions": conditions},
                             [as_event(c) for c in changed(status["conditions"], conditions)], self._written)

    async def _evict(self, outcome: Outcome, action: PodEvictions, evicter: PodEvicter) -> None:
        """A pool's round of pressure evictions: each pod's outcome goes into its
        status.lastEvictions when the round ends, with an Event per pod on the pool (and on
        each pod evicted)."""
        outcomes = await evicter.apply(action)
        for answer in outcomes.values():
            result = EVICTION_RESULTS.get(outcome_of(answer))
            if result is not None:
                self.telemetry.actions.labels(action.actuator, result).inc()
        status, events, pod_events = resourcepool.evictions_made(outcome.obj.name, outcome.decision.status, outcomes)
        await report.publish(outcome.plural, outcome.obj, status, events, self._written)
        uids = {f"{namespace}/{name}": uid for namespace, name, uid in action.pods}
        for pod, reason, message, warning in pod_events:
            namespace, name = pod.split("/", 1)
            await report.event_on({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": name, "namespace": namespace, "uid": uids[pod]}}, reason, message, warning)

    async def _publish(self, outcome: Outcome) -> bool:
        return await report.publish(outcome.plural, outcome.obj, outcome.decision.status,
                                    outcome.decision.events, self._written)

    async def _apply_priority_classes(self, classes: PriorityClasses) -> None:
        """They belong to no object, so a failure is logged and counted, not an Event."""
        try:
            await PriorityClassWriter(api_client()).apply(classes)
            self.telemetry.actions.labels(classes.actuator, "applied").inc()
            logger.info("%s", classes.describe())
        except ApiException as error:
            self.telemetry.actions.labels(classes.actuator, "failed").inc()
            logger.warning("%s: not applied (%s %s: %s); the next cycle tries again", classes.describe(),
                           error.status, error.reason, error.body)

    async def _act(self, outcomes: list[Outcome]) -> None:
        api = api_client()
        hpas, requests, evicter = HorizontalPodAutoscalers(api), WorkloadRequests(api), PodEvicter(api)
        actuators = {ReplicaBounds: hpas.apply, TemplateRequests: requests.apply, PodResize: requests.apply,
                     QuotaObjects: QuotaObjectWriter(api).apply}
        for outcome in outcomes:
            action = outcome.decision.action
            if isinstance(action, NodePoolSize):
                await self._resize_node_pool(outcome, action)
                continue
            if isinstance(action, PodEvictions):
                await self._evict(outcome, action, evicter)
                continue
            try:
                await actuators[type(action)](action)
                self.telemetry.actions.labels(action.actuator, "applied").inc()
            except ApiException as error:
                self.telemetry.actions.labels(action.actuator, "failed").inc()
                logger.warning("%s: %s not applied (%s %s)", outcome.obj.name, action.actuator, error.status,
                               error.reason)
                await report.event(outcome.obj, "ActionFailed",
                                   f"{action.describe()}: not applied: {error.status} {error.reason}; "
                                   f"the next cycle tries again", warning=True)


def _requests_per_pod(pods: list[PodRecord]) -> dict[WorkloadKey, dict[str, float]]:
    """One pod's requests per workload (its pods share a template)."""
    return {p.owner: dict(p.requests) for p in pods if p.owner is not None}


def _pool_sums(history: np.ndarray, members: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each pool's usage: its members' rows of `history` times their shares, summed; NaN
    only where none of its members is known."""
    sums = np.full((len(members), history.shape[1]), np.nan)
    for row, (indices, shares) in enumerate(members):
        if indices.size:
            part = history[indices]
            known = np.isfinite(part)
            total = np.einsum("i,it->t", shares, np.where(known, part, 0.0))
            sums[row] = np.where(known.any(axis=0), total, np.nan)
    return sums


def _label_sets(metric) -> list[tuple[str, ...]]:
    return [tuple(labels) for labels in metric._metrics]  # prometheus_client keeps children by label values


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
