"""The cycle's first stage: what the cluster holds (from Kopf's indices) and what its
workloads use (from Prometheus), as plain records and arrays.

Usage is pulled with one range query per signal for every namespace the cycle needs;
histories stay in memory (`UsageHistory`), so a steady cycle pulls only the samples since
the last one (and a few steps before, which Prometheus may have filled in since). A
namespace seen for the first time gets its whole history in one cold pull. The PromQL of
ScalingPolicies' custom signals (`promql`, `queueDepth`) is pulled the same way, one range
query per distinct query, its series summed into the signal's total.
"""
from __future__ import annotations

import string
from collections import Counter
from functools import cached_property
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

import numpy as np

from quartermaster.operator.accounting import NodeRecord, PodRecord, node_record, pod_record
from quartermaster.operator.prometheus_reader import MetricsUnavailable, PrometheusReader, RangeResult, aligned
from quartermaster.operator.settings import MetricsSettings
from quartermaster.operator.usage_history import UsageHistory
from quartermaster.operator.workloads import PodResolver, WorkloadKey, WorkloadTemplate, workload_template

SIGNALS = ("cpu", "memory")


@dataclass(frozen=True)
class CustomObject:
    """One of our resources as the cycle needs it: its spec, the status last seen, and the
    reference Events name."""

    name: str
    namespace: Optional[str]  # None for cluster-scoped kinds
    uid: str
    generation: int
    spec: Mapping
    status: Mapping
    reference: Mapping  # apiVersion, kind, metadata {name, namespace, uid, resourceVersion}
    annotations: Mapping = field(default_factory=dict)


def custom_object(body: Mapping) -> CustomObject:
    meta = body.get("metadata") or {}
    return CustomObject(
        name=meta["name"], namespace=meta.get("namespace"), uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        spec=dict(body.get("spec") or {}), status=dict(body.get("status") or {}),
        reference={"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                   "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion")}},
        annotations=dict(meta.get("annotations") or {}))


@dataclass(frozen=True)
class ClusterSnapshot:
    nodes: list[NodeRecord]
    pods: list[PodRecord]
    namespace_labels: dict[str, dict[str, str]]
    pools: list[CustomObject]
    policies: list[CustomObject] = field(default_factory=list)
    hpas: list = field(default_factory=list)  # scalingpolicy.HpaRecord
    vpas: list = field(default_factory=list)  # scalingpolicy.VpaRecord
    workloads: list[WorkloadTemplate] = field(default_factory=list)  # Deployments' and StatefulSets'
    plans: list[CustomObject] = field(default_factory=list)  # SwapPlans
    quotas: list[CustomObject] = field(default_factory=list)
    quota_objects: list = field(default_factory=list)  # quota.OwnedRecord: the ResourceQuotas and LimitRanges we own
    priority_classes: dict = field(default_factory=dict)  # name -> quota.priority_class_content: the ones we made

    def templates(self) -> dict[WorkloadKey, WorkloadTemplate]:
        return {w.key: w for w in self.workloads}

    @cached_property
    def pods_per_workload(self) -> Counter:
        """How many pods each workload has: counted once a snapshot, for every kind that asks."""
        return Counter(p.owner for p in self.pods if p.owner is not None)


def snapshot_from_objects(nodes: Iterable[Mapping] = (), pods: Iterable[Mapping] = (),
                          namespaces: Iterable[Mapping] = (), pools: Iterable[Mapping] = (),
                          policies: Iterable[Mapping] = (), workloads: Iterable[Mapping] = (),
                          plans: Iterable[Mapping] = (), quotas: Iterable[Mapping] = ()) -> ClusterSnapshot:
    """A snapshot from Kubernetes-shaped objects (as `kubectl get -o json` lists them), for
    benchmarks, replays and tests; the operator's own comes from its indices."""
    def meta(obj):
        return obj.get("metadata") or {}

    records = (pod_record(meta(p).get("namespace", "default"), meta(p)["name"], meta(p).get("labels") or {},
                          p.get("spec") or {}, p.get("status") or {}, meta(p))
               for p in pods)
    return ClusterSnapshot(
        nodes=[node_record(meta(n)["name"], meta(n).get("labels") or {}, n.get("spec") or {}, n.get("status") or {})
               for n in nodes],
        pods=[r for r in records if r is not None],
        namespace_labels={meta(ns)["name"]: dict(meta(ns).get("labels") or {}) for ns in namespaces},
        pools=[custom_object(p) for p in pools], policies=[custom_object(p) for p in policies],
        workloads=[workload_template(w["kind"], meta(w).get("namespace", "default"), meta(w)["name"],
                                     int(meta(w).get("generation") or 0), w.get("spec") or {}, w.get("status") or {},
                                     meta(w).get("annotations"))
                   for w in workloads],
        plans=[custom_object(p) for p in plans], quotas=[custom_object(q) for q in quotas])


def snapshot_from_indices(node_index, pod_index, namespace_index, pool_index, policy_index,
                          hpa_index, vpa_index, deployment_index, statefulset_index, swapplan_index, quota_index,
                          resourcequota_index, limitrange_index, priorityclass_index) -> ClusterSnapshot:
    """A snapshot of Kopf's indices (each keeps a store of values per key: take them all)."""
    def values(index):
        return [value for store in index.values() for value in store]

    return ClusterSnapshot(
        nodes=values(node_index), pods=values(pod_index),
        namespace_labels={ns: labels for ns, store in namespace_index.items() for labels in store},
        pools=values(pool_index), policies=values(policy_index), hpas=values(hpa_index),
        vpas=values(vpa_index),
        workloads=values(deployment_index) + values(statefulset_index), plans=values(swapplan_index),
        quotas=values(quota_index), quota_objects=values(resourcequota_index) + values(limitrange_index),
        priority_classes={name: content for name, store in priorityclass_index.items() for content in store})


@dataclass
class UsageObserver:
    """Keeps each signal's history per workload up to date from Prometheus."""

    settings: MetricsSettings
    reader: Optional[PrometheusReader]
    histories: dict[str, UsageHistory] = field(init=False)
    queries: UsageHistory = field(init=False)  # custom signals' totals, a row per PromQL query
    last_success: Optional[float] = None  # when a pull last brought every signal up to date
    _covered: dict[str, set[str]] = field(init=False)  # namespaces whose history each signal holds
    _pulled_until: dict[str, float] = field(init=False)  # the end of each signal's last good pull
    _queries_pulled_until: dict[str, float] = field(init=False)  # and of each custom query's

    def __post_init__(self) -> None:
        step, window = self.settings.step_seconds, self.settings.history_seconds
        self.histories = {s: UsageHistory(step, window) for s in SIGNALS}
        self.queries = UsageHistory(step, window)
        self._covered = {s: set() for s in SIGNALS}
        self._pulled_until, self._queries_pulled_until = {}, {}

    def templates(self) -> dict[str, str]:
        return {"cpu": self.settings.cpu_query, "memory": self.settings.memory_query}

    def pull(self, pods: Iterable[PodRecord], workloads: Iterable[WorkloadKey], now: float) -> None:
        """Bring every signal's history of `workloads` up to `now`. Raises
        MetricsUnavailable (the histories keep what they had)."""
        if self.reader is None:
            raise MetricsUnavailable("PrometheusNotConfigured", "no --prometheus-url given", "(none)")
        workloads = set(workloads)
        wanted = sorted({w.namespace for w in workloads})
        resolver = PodResolver({(p.namespace, p.name): p.owner for p in pods if p.owner is not None})
        step = self.settings.step_seconds
        end = aligned(now, step)
        for signal, template in self.templates().items():
            history = self.histories[signal]
            fresh = [ns for ns in wanted if ns not in self._covered[signal]]
            known = [ns for ns in wanted if ns in self._covered[signal]]
            history.advance(end)
            if known:
                self._pull_into(history, template, known, resolver, self._resume(self._pulled_until[signal], history),
                                end, cold=False)
            if fresh:
                self._pull_into(history, template, fresh, resolver, history.timestamps[0], end, cold=True)
            # a namespace that leaves and comes back is pulled whole again
            self._covered[signal] = set(wanted)
            self._pulled_until[signal] = end
            history.forget(workloads)
        self.last_success = now

    def pull_queries(self, queries: Iterable[str], now: float) -> dict[str, MetricsUnavailable]:
        """Bring each custom query's total up to `now`: one range query each, from the last
        good pull on (its whole window the first time). Returns the queries that failed or
        answered with no series, with why; their histories keep what they had."""
        if self.reader is None:
            raise MetricsUnavailable("PrometheusNotConfigured", "no --prometheus-url given", "(none)")
        queries = sorted(set(queries))
        history, end = self.queries, aligned(now, self.settings.step_seconds)
        history.advance(end)
        failures = {}
        for query in queries:
            last = self._queries_pulled_until.get(query)
            start = history.timestamps[0] if last is None else self._resume(last, history)
            try:
                result = self.reader.range(query, start, end, history.step,
                                           expected_series=1 if last is not None else self.reader.count(query, end))
            except MetricsUnavailable as failure:
                failures[query] = failure
                continue
            # the pulled range replaces what was held for it: no series, no values
            history.write([query], result.timestamps, total(result.values)[None, :])
            if result.labels:
                self._queries_pulled_until[query] = end
            else:
                failures[query] = MetricsUnavailable("QueryReturnedNothing", "the query returned no series",
                                                     self.reader.url)
        history.forget(queries)
        self._queries_pulled_until = {q: self._queries_pulled_until[q] for q in queries
                                      if q in self._queries_pulled_until}
        return failures

    def _resume(self, pulled_until: float, history: UsageHistory) -> float:
        """Where an incremental pull starts: a few steps before the last good one ended, as
        Prometheus may have filled them in since (and never before the window)."""
        return max(pulled_until - self.settings.max_age_steps * history.step, history.timestamps[0])

    def _pull_into(self, history: UsageHistory, template: str, namespaces: list[str],
                   resolver: PodResolver, start: float, end: float, cold: bool) -> None:
        promql = string.Template(template).safe_substitute(
            # namespace names are DNS labels (a-z, 0-9, "-"): literal in RE2 as they are
            namespaces="|".join(namespaces), window=self.settings.rate_window)
        # a cold pull is split by the number of series; a steady one is a few points each
        expected = self.reader.count(promql, end) if cold else 1
        result = self.reader.range(promql, start, end, history.step, expected_series=expected)
        keys, values = by_workload(result, resolver)
        history.write(keys, result.timestamps, values)


def total(values: np.ndarray) -> np.ndarray:
    """The sum of the rows of `values` [n, T], NaN only where none of them has a value."""
    known = np.isfinite(values).any(axis=0)
    return np.where(known, np.nansum(values, axis=0, dtype=np.float64), np.nan).astype(np.float32)


def by_workload(result: RangeResult, resolver: PodResolver) -> tuple[list[WorkloadKey], np.ndarray]:
    """Per-pod series summed per workload; a workload's value is NaN only where none of its
    pods has a sample. Series of pods no workload claims are left out."""
    owners = [resolver.workload(m.get("namespace", ""), m.get("pod", ""), m) for m in result.labels]
    claimed = [i for i, o in enumerate(owners) if o is not None]
    keys = list(dict.fromkeys(owners[i] for i in claimed))
    values = result.values if len(claimed) == len(owners) else result.values[claimed]
    if len(keys) == len(claimed):  # one series per workload: nothing to add up
        return keys, values
    row_of = {k: i for i, k in enumerate(keys)}
    rows = np.array([row_of[owners[i]] for i in claimed], dtype=np.int64)
    sums = np.full((len(keys), values.shape[1]), np.nan, dtype=np.float32)
    # a slice of columns at a time, so the float64 sums stay small whatever the range
    for first in range(0, values.shape[1], _SUM_COLUMNS):
        part = values[:, first:first + _SUM_COLUMNS]
        total = np.zeros((len(keys), part.shape[1]))
        known = np.zeros((len(keys), part.shape[1]), dtype=np.int32)
        np.add.at(total, rows, np.nan_to_num(part, nan=0.0))
        np.add.at(known, rows, np.isfinite(part))
        sums[:, first:first + part.shape[1]] = np.where(known > 0, total, np.nan)
    return keys, sums


_SUM_COLUMNS = 256
