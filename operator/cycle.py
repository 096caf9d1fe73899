"""The control cycle: observe → forecast → decide → act → report, once for every object.

One cycle per resync (and when the cluster or an object changes, debounced) does for all
objects at once what per-object loops would each redo: one Prometheus pull per signal for
every workload any pool needs, one `forecast_many` over every series, then each kind's
pure decide step. `compute` is synchronous and does no Kubernetes I/O (the operator runs
it on a thread, so the event loop and the liveness probe stay responsive); `run` adds the
report stage: status patches when something changed, and Events.

Series forecast each cycle: every member workload's cpu and memory, and each pool's
aggregate (its member workloads' usage summed, a workload counted by the share of its
pods in the pool). A pool's forecast is its aggregate's own: quantiles do not add up.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Optional

import numpy as np

from quartermaster.operator import report
from quartermaster.operator.accounting import PoolSummary, summarise
from quartermaster.operator.forecast_tracking import ForecastTracker
from quartermaster.operator.models import ResourcePoolSpec
from quartermaster.operator.observe import SIGNALS, ClusterSnapshot, CustomObject, UsageObserver
from quartermaster.operator.prometheus_reader import MetricsUnavailable, PrometheusReader
from quartermaster.operator.resourcepool import PoolDecision, ResourceFigures, UsageFigures, decide, parse_spec
from quartermaster.operator.settings import OperatorSettings
from quartermaster.operator.telemetry import Telemetry
from quartermaster.operator.usage_history import latest
from quartermaster.operator.workloads import WorkloadKey
from quartermaster.planner.pools import strategy_parameters
from quartermaster.predictors import forecast_many_detailed

logger = logging.getLogger(__name__)
MEDIAN = 0.5
WORKLOAD_UPPER = 0.9  # the quantile workloads' live accuracy is scored on


@dataclass(frozen=True)
class PoolOutcome:
    pool: CustomObject
    decision: PoolDecision


@dataclass
class CycleResult:
    pools: list[PoolOutcome]
    workloads: int
    metrics_error: Optional[MetricsUnavailable]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Membership:
    """Which workloads draw on each valid pool, and by what share of their pods."""

    specs: dict[str, ResourcePoolSpec | str]
    summaries: dict[str, PoolSummary]
    shares: dict[str, dict[WorkloadKey, float]]

    @property
    def workloads(self) -> list[WorkloadKey]:
        return sorted({w for shares in self.shares.values() for w in shares})


class ControlCycle:
    def __init__(self, settings: OperatorSettings, reader: Optional[PrometheusReader] = None,
                 telemetry: Optional[Telemetry] = None) -> None:
        self.settings = settings
        if reader is None and settings.metrics.prometheus_url:
            reader = PrometheusReader(settings.metrics)
        self.usage = UsageObserver(settings.metrics, reader)
        self.tracker = ForecastTracker()
        self.telemetry = telemetry or Telemetry()
        self._specs: dict[tuple[str, int], ResourcePoolSpec | str] = {}  # parsed once per generation
        # pool uid -> the status last written: what transitions are decided against, so a
        # write that failed is decided (and its Events filed) again by the next cycle
        self._written: dict[str, dict] = {}
        self._forecast_cache: Optional[tuple] = None  # (what was asked, forecasts, upper rows)

    # ---- compute: observe, forecast, decide (no Kubernetes I/O) ---------------------

    def compute(self, snapshot: ClusterSnapshot, now: float) -> CycleResult:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        membership = self._membership(snapshot)
        workloads = membership.workloads
        error = None
        if workloads:
            try:
                self.usage.pull(snapshot.pods, workloads, now)
            except MetricsUnavailable as failure:
                error = failure
                self.telemetry.query_errors.labels(failure.reason).inc()
                logger.warning("usage not read: %s", failure)
        timings["observe"], clock = time.perf_counter() - clock, time.perf_counter()

        names = {p.uid: p.name for p in snapshot.pools}
        usage = None if error or not workloads else self._forecast(membership, workloads, names)
        timings["forecast"], clock = time.perf_counter() - clock, time.perf_counter()

        problem = None if error is None else (error.reason, self._unavailable_message(error, now))
        outcomes = []
        for pool in snapshot.pools:
            spec = membership.specs[pool.uid]
            previous = self._written.get(pool.uid, pool.status)
            shares = membership.shares.get(pool.uid, {})
            decision = decide(pool, spec, membership.summaries.get(pool.uid), len(shares),
                              None if usage is None else usage.get(pool.uid), problem, previous, now)
            outcomes.append(PoolOutcome(pool, decision))
        self._forget_pools(set(names), set(names.values()))
        timings["decide"] = time.perf_counter() - clock

        self.telemetry.workloads.set(len(workloads))
        if self.usage.last_success is not None:
            self.telemetry.metrics_age.set(now - self.usage.last_success)
        return CycleResult(outcomes, len(workloads), error, timings)

    def _parse(self, pool: CustomObject) -> ResourcePoolSpec | str:
        key = (pool.uid, pool.generation)
        if key not in self._specs:
            self._specs[key] = parse_spec(pool)
        return self._specs[key]

    def _membership(self, snapshot: ClusterSnapshot) -> _Membership:
        pods_of = Counter(p.owner for p in snapshot.pods if p.owner is not None)
        specs, summaries, shares = {}, {}, {}
        for pool in snapshot.pools:
            spec = specs[pool.uid] = self._parse(pool)
            if isinstance(spec, str):
                continue
            summary = summaries[pool.uid] = summarise(spec, snapshot.nodes, snapshot.pods, snapshot.namespace_labels)
            members = Counter(p.owner for p in summary.member_pods if p.owner is not None)
            shares[pool.uid] = {w: n / pods_of[w] for w, n in members.items()}
        return _Membership(specs, summaries, shares)

    def _forecast(self, membership: _Membership, workloads: list[WorkloadKey],
                  names: dict[str, str]) -> dict[str, UsageFigures]:
        """One forecast over every workload's and every pool's series; the pools' figures."""
        step = self.settings.metrics.step_seconds
        pools = list(membership.shares)
        params = {uid: strategy_parameters(membership.specs[uid].strategy.value,
                                           self._lowest_coverage(uid)) for uid in pools}
        column = {w: i for i, w in enumerate(workloads)}
        shares = np.zeros((len(pools), len(workloads)))
        for row, uid in enumerate(pools):
            for w, share in membership.shares[uid].items():
                shares[row, column[w]] = share
        keys: list[Hashable] = []
        rows, upper_levels = [], []
        for signal in SIGNALS:
            history = self.usage.histories[signal].matrix(workloads)
            rows += [history, _weighted_sum(shares, history)]
            keys += [("workload", w, signal) for w in workloads] + [("pool", uid, signal) for uid in pools]
            upper_levels += [WORKLOAD_UPPER] * len(workloads) + [params[uid].quantile for uid in pools]
        series = np.concatenate(rows).astype(np.float64)
        history = self.usage.histories[SIGNALS[0]]
        timestamps, end = history.timestamps, history.end

        horizon = max(math.ceil(p.horizon_seconds / step) for p in params.values()) if params else 1
        quantiles = sorted({MEDIAN, WORKLOAD_UPPER, *(p.quantile for p in params.values())})
        # A forecast changes only with a new grid step (or other series): cycles between
        # steps (resyncs, pod events) reuse the last one.
        asked = (end, tuple(keys), tuple(upper_levels), horizon, tuple(quantiles))
        if self._forecast_cache is not None and self._forecast_cache[0] == asked:
            forecasts, upper = self._forecast_cache[1:]
        else:
            self.tracker.score(keys, timestamps, series)
            forecasts = forecast_many_detailed(series, step, horizon, quantiles)
            level = {q: i for i, q in enumerate(quantiles)}
            upper = forecasts.values[np.arange(len(keys)), [level[q] for q in upper_levels]]
            self.tracker.remember(end, step, forecasts.values[:, level[MEDIAN]], upper)
            self._forecast_cache = (asked, forecasts, upper)

        now_values, age = latest(series, self.settings.metrics.max_age_steps)
        row_of = {k: i for i, k in enumerate(keys)}
        figures = {}
        for row, uid in enumerate(pools):
            resources = {}
            for signal in SIGNALS:
                i = row_of[("pool", uid, signal)]
                resources[signal] = ResourceFigures(
                    used=None if age[i] < 0 else float(now_values[i]), history=series[i], forecast=upper[i],
                    tier=forecasts.tier[i], model=forecasts.model[i], confidence=float(forecasts.confidence[i]),
                    accuracy=self.tracker.accuracy(("pool", uid, signal)))
                accuracy = resources[signal].accuracy
                if accuracy.coverage is not None:
                    self.telemetry.forecast_coverage.labels(names[uid], signal).set(accuracy.coverage)
                    self.telemetry.forecast_scaled_error.labels(names[uid], signal).set(accuracy.scaled_error)
            missing = tuple(str(w) for w in membership.shares[uid]
                            if age[row_of[("workload", w, SIGNALS[0])]] < 0)
            figures[uid] = UsageFigures(resources, timestamps, step, end, missing)
        return figures

    def _lowest_coverage(self, uid: str) -> Optional[float]:
        known = [a.coverage for a in (self.tracker.accuracy(("pool", uid, s)) for s in SIGNALS)
                 if a.coverage is not None]
        return min(known) if known else None

    def _unavailable_message(self, error: MetricsUnavailable, now: float) -> str:
        last = self.usage.last_success
        kept = "no usage figures yet" if last is None else f"last good figures from {_age(now - last)} ago kept"
        return f"{error}; {kept}; no action is taken on them"

    def _forget_pools(self, uids: set[str], names: set[str]) -> None:
        for uid in [u for u in self._written if u not in uids]:
            del self._written[uid]
        self._specs = {k: v for k, v in self._specs.items() if k[0] in uids}
        for gauge in (self.telemetry.forecast_coverage, self.telemetry.forecast_scaled_error):
            for labels in [labels for labels in _label_sets(gauge) if labels[0] not in names]:
                gauge.remove(*labels)

    # ---- run: compute off the event loop, then report -------------------------------

    async def run(self, snapshot: ClusterSnapshot) -> CycleResult:
        started = time.perf_counter()
        result = await asyncio.to_thread(self.compute, snapshot, time.time())
        clock = time.perf_counter()
        for outcome in result.pools:
            await report.publish_pool(outcome.pool, outcome.decision, self._written)
        result.timings["report"] = time.perf_counter() - clock
        for stage, seconds in result.timings.items():
            self.telemetry.stage_seconds.labels(stage).observe(seconds)
        self.telemetry.cycle_seconds.observe(time.perf_counter() - started)
        return result


def _weighted_sum(shares: np.ndarray, history: np.ndarray) -> np.ndarray:
    """shares @ history with NaN for "unknown": NaN only where no contributing row is known."""
    known = np.isfinite(history)
    sums = shares @ np.where(known, history, 0.0)
    counts = (shares > 0).astype(np.float64) @ known
    return np.where(counts > 0, sums, np.nan)


def _label_sets(metric) -> list[tuple[str, ...]]:
    return [tuple(labels) for labels in metric._metrics]  # prometheus_client keeps children by label values


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
