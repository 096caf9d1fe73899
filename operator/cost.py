"""Cost's observe side: Prometheus range queries → per-pod arrays of requests and usage on
a coarse grid (planner.cost charges them), and the OpenCost-shaped `/cost` answer.

Five range queries a read, one per template (cpu and memory usage, the templates the cycle
forecasts with; kube-state-metrics' cpu, memory and GPU requests), each over every
namespace at once, from the month's start (or `cost_lookback_seconds` ago, if earlier) at
`cost_step_seconds`; the reader splits a range that would pass Prometheus's points-per-series
limit. Nothing is counted in memory: a restarted operator reads the same figures again. A
read is reused until the grid gains a step.

Fresh or not: the cpu usage query counted by namespace at `now` says which namespaces have
a current sample (within its rate window and Prometheus's 5-minute lookback); a namespace
with Running pods and none is stale, and no cost figure is given for it.
"""
from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Optional

import numpy as np

from quartermaster.operator.accounting import PodRecord
from quartermaster.operator.conditions import rfc3339
from quartermaster.operator.models import FINDINGS_SHOWN
from quartermaster.operator.prices import PriceTable
from quartermaster.operator.prometheus_reader import MetricsUnavailable, PrometheusReader, aligned
from quartermaster.operator.quantities import format_quantity, request_precision
from quartermaster.operator.settings import MetricsSettings
from quartermaster.operator.workloads import PodResolver
from quartermaster.planner.cost import RESOURCES, Spend, allocations, calendar, costs_per_hour, spend
from quartermaster.planner.waste import Finding, FindingKind, findings

UNALLOCATED = "__unallocated__"  # OpenCost's name for what no group claims
SETTLE_SECONDS = 60  # a read this soon after the grid's last time is read again: samples may still arrive
AGGREGATES = ("namespace", "workload", "pool")
_DURATION = re.compile(r"^(\d+)([mhd])$")


@dataclass(frozen=True)
class CostData:
    """Each pod's requests and usage per resource on the cost grid, and its prices."""

    pods: list[tuple[str, str]]  # rows: (namespace, pod)
    timestamps: np.ndarray  # [T]
    step: int
    requests: np.ndarray  # [n, R, T] cores, bytes, GPUs; NaN where unknown
    usage: np.ndarray  # [n, R, T]
    unit_prices: np.ndarray  # [n, R] per unit-hour
    now: float
    currency: str
    fresh: frozenset[str]  # namespaces with a current usage sample

    def workloads(self, live: Mapping[tuple[str, str], Hashable]) -> list:
        """Each row's workload (None for a pod of none known), gone pods by their names."""
        resolver = PodResolver(live)
        return [resolver.workload(ns, pod) for ns, pod in self.pods]

    def spend(self, namespaces: Iterable[str]) -> Spend:
        """What the pods of `namespaces` spent today and this month, and the forecasts."""
        wanted = set(namespaces)
        rows = [i for i, (ns, _) in enumerate(self.pods) if ns in wanted]
        hourly = costs_per_hour(self.requests[rows], self.usage[rows], self.unit_prices[rows]).sum(axis=(0, 1))
        return spend(hourly, self.timestamps, self.step, self.now)


class CostObserver:
    def __init__(self, settings: MetricsSettings, prices: PriceTable, reader: Optional[PrometheusReader]) -> None:
        self.settings, self.prices, self.reader = settings, prices, reader
        self._cache: Optional[tuple[tuple, tuple]] = None  # (what was asked, (pods, timestamps, requests, usage))

    def templates(self) -> dict[tuple[str, str], str]:
        """(role, resource) -> template; usage has no GPU series (GPUs are charged by request)."""
        s = self.settings
        return {("usage", "cpu"): s.cpu_query, ("usage", "memory"): s.memory_query,
                ("requests", "cpu"): s.cpu_request_query, ("requests", "memory"): s.memory_request_query,
                ("requests", "gpu"): s.gpu_request_query}

    def read(self, pods: list[PodRecord], node_labels: Mapping[str, Mapping[str, str]], namespaces: list[str],
             now: float) -> CostData:
        """The cost grid of `namespaces` up to `now`. Raises MetricsUnavailable."""
        if self.reader is None:
            raise MetricsUnavailable("PrometheusNotConfigured", "no --prometheus-url given", "(none)")
        step = self.settings.cost_step_seconds
        month_start = calendar(now)[2]
        start = aligned(min(month_start, now - self.settings.cost_lookback_seconds), step)
        end = aligned(now, step)
        asked = (tuple(namespaces), start, end)
        if self._cache is None or self._cache[0] != asked:
            grid = self._pull(namespaces, start, end, step, max(len(pods), 1))
            if now - end >= SETTLE_SECONDS:
                self._cache = (asked, grid)
        else:
            grid = self._cache[1]
        rows, timestamps, requests, usage = grid
        # one point at `now`: which namespaces have a usage sample within the lookback
        current = self.reader.range(f"count by (namespace) ({self._fill(self.settings.cpu_query, namespaces)})",
                                    now, now, step)
        fresh = frozenset(labels.get("namespace", "") for labels in current.labels)
        node_of = {(p.namespace, p.name): p.node for p in pods}
        by_node = {node: self.prices.prices(node_labels.get(node)).per_unit_hour()
                   for node in {node_of.get(pod) for pod in rows}}
        prices = np.array([by_node[node_of.get(pod)] for pod in rows])
        return CostData(rows, timestamps, step, requests, usage, prices.reshape(len(rows), len(RESOURCES)), now,
                        self.prices.currency, fresh)

    def _fill(self, template: str, namespaces: list[str]) -> str:
        return string.Template(template).safe_substitute(namespaces="|".join(namespaces),
                                                         window=self.settings.rate_window)

    def _pull(self, namespaces: list[str], start: float, end: float, step: int, expected: int) -> tuple:
        results = {key: self.reader.range(self._fill(template, namespaces), start, end, step, expected)
                   for key, template in self.templates().items()}
        rows = sorted({(m.get("namespace", ""), m.get("pod", "")) for r in results.values() for m in r.labels})
        index = {pod: i for i, pod in enumerate(rows)}
        timestamps = next(iter(results.values())).timestamps
        grids = {role: np.full((len(rows), len(RESOURCES), len(timestamps)), np.nan) for role in ("requests", "usage")}
        for (role, resource), result in results.items():
            for labels, values in zip(result.labels, result.values):
                grids[role][index[(labels.get("namespace", ""), labels.get("pod", ""))],
                            RESOURCES.index(resource)] = values
        return rows, timestamps, grids["requests"], grids["usage"]


@dataclass(frozen=True)
class WasteReport:
    """The waste findings (planner.waste) of every workload on the cost grid's last week."""

    findings: tuple[Finding, ...]
    currency: str

    def for_quota(self, namespaces: Iterable[str], previous: Optional[list[Mapping]],
                  now: float) -> tuple[Optional[list[dict]], list[tuple[str, str, bool]]]:
        """The findings of workloads in `namespaces` as a Quota's status holds them, and an
        Event for each one not yet reported today (UTC): a finding's `reported` day in
        status is the record, so neither a cycle nor a restart files it twice in a day."""
        today = rfc3339(calendar(now)[0])[:10]
        reported = {(f.get("kind"), f.get("workload")): f.get("reported") for f in previous or []}
        wanted = set(namespaces)
        # cost anomalies first (no saving to rank them by, and the only warnings), then the
        # largest savings
        mine = sorted((f for f in self.findings if f.workload.namespace in wanted),
                      key=lambda f: (f.kind is not FindingKind.COST_ANOMALY, -(f.monthly_saving or 0.0),
                                     str(f.workload), f.kind.value))[:FINDINGS_SHOWN]
        entries, events = [], []
        for f in mine:
            entry = {"kind": f.kind.value, "workload": str(f.workload), "message": f.message,
                     "currency": self.currency, "reported": today}
            if f.monthly_saving is not None:
                entry["monthlySaving"] = round(f.monthly_saving, 2)
            if f.recommended:
                entry["recommended"] = {r: format_quantity(r, request_precision(r, v)) for r, v in f.recommended}
            if reported.get((entry["kind"], entry["workload"])) != today:
                events.append((f.kind.value, f"{f.workload}: {f.message}", f.kind is FindingKind.COST_ANOMALY))
            entries.append(entry)
        return entries or None, events


def waste_report(data: CostData, live: Mapping[tuple[str, str], Hashable]) -> WasteReport:
    """The findings of every workload whose pods are on the grid (gone pods by their names,
    as the /cost answer resolves them); pods of no known workload are left out."""
    keys = data.workloads(live)
    rows = [i for i, key in enumerate(keys) if key is not None]
    return WasteReport(tuple(findings([keys[i] for i in rows], data.requests[rows], data.usage[rows],
                                      data.unit_prices[rows], data.step)), data.currency)


def parse_window(window: str, now: float) -> tuple[float, float]:
    """OpenCost's `window`: today, month, or a duration back from now (30m, 12h, 7d)."""
    day_start, _, month_start, _ = calendar(now)
    if window == "today":
        return day_start, now
    if window == "month":
        return month_start, now
    match = _DURATION.match(window)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window must be today, month or a duration such as 30m, 12h or 7d, got {window!r}")
    seconds = int(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return now - seconds, now


def allocation_answer(data: CostData, live: Mapping[tuple[str, str], Hashable], pools: Mapping[tuple[str, str], str],
                      window: str, aggregate: str) -> dict:
    """OpenCost's /allocation shape: {"code": 200, "data": [{name: allocation}]}. Raises
    ValueError for a window or aggregate it cannot answer."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    start, end = parse_window(window, data.now)
    held = data.timestamps[0] if len(data.timestamps) else data.now
    if start < held:
        raise ValueError(f"window {window} starts before {rfc3339(held)}, the earliest cost held "
                         f"(the month's start or --cost lookback)")
    workload = data.workloads(live)
    keys = {"namespace": [ns for ns, _ in data.pods],
            "workload": [UNALLOCATED if w is None else f"{w.namespace}/{w.kind}/{w.name}" for w in workload],
            "pool": [pools.get(pod, UNALLOCATED) for pod in data.pods]}[aggregate]
    found = allocations(keys, data.requests, data.usage, data.unit_prices, data.timestamps, data.step, start, end)
    window_times = {"start": rfc3339(start), "end": rfc3339(end)}

    def entry(name, a) -> dict:
        cpu, memory, gpu = range(len(RESOURCES))
        return {"name": name, "properties": {"aggregate": aggregate}, "window": window_times, **window_times,
                "minutes": a.hours * 60, "currency": data.currency,
                "cpuCoreRequestAverage": a.request_average[cpu], "cpuCoreUsageAverage": a.usage_average[cpu],
                "cpuCoreHours": a.charged_hours[cpu], "cpuCost": a.cost[cpu],
                "ramByteRequestAverage": a.request_average[memory], "ramByteUsageAverage": a.usage_average[memory],
                "ramByteHours": a.charged_hours[memory], "ramCost": a.cost[memory],
                "gpuHours": a.charged_hours[gpu], "gpuCost": a.cost[gpu], "totalCost": a.total}

    return {"code": 200, "data": [{name: _plain(entry(name, a)) for name, a in sorted(found.items())}]}


def _plain(entry: dict) -> dict:
    """numpy figures as JSON numbers (a NaN would not be valid JSON)."""
    return {k: (float(v) if math.isfinite(float(v)) else None) if isinstance(v, (float, np.floating)) else v
            for k, v in entry.items()}
