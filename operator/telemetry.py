"""The operator's own metrics (prometheus_client), served at /metrics.

One registry per operator, passed to the cycle, so tests and benchmarks can make their own.
Names follow Prometheus's conventions: `quartermaster_` prefix, base units, `_total` counters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from quartermaster.operator.quantities import to_float

# Cycles take from milliseconds (a small cluster) to tens of seconds (10,000 workloads).
_CYCLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


# A pool's status figures exported per resource, in base units (cores, bytes), as
# kube-state-metrics exports a node's allocatable: what a dashboard sets forecasts against.
POOL_FIGURES = {
    "capacity": "Allocatable of a pool's schedulable nodes (or its fixed capacity).",
    "requested": "Requests of a pool's member pods, as the scheduler counts them.",
    "used": "Latest usage of a pool's member workloads.",
    "forecast": "Peak of a pool's forecast over its strategy's horizon, at its strategy's quantile.",
}


@dataclass
class Telemetry:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    # {pool name: its status}, read at each scrape (the operator's runner points it at the
    # cycle's latest snapshot); the pool figures are a view of status, not a second record
    pool_statuses: Callable[[], Mapping[str, Mapping]] = dict

    def __post_init__(self) -> None:
        r = self.registry
        self.cycle_seconds = Histogram(
            "quartermaster_cycle_duration_seconds", "One control cycle, observe to report.",
            buckets=_CYCLE_BUCKETS, registry=r)
        self.stage_seconds = Histogram(
            "quartermaster_cycle_stage_duration_seconds", "One stage of the control cycle.",
            ["stage"], buckets=_CYCLE_BUCKETS, registry=r)
        self.workloads = Gauge(
            "quartermaster_workloads_observed", "Workloads whose usage the last cycle observed.", registry=r)
        self.query_errors = Counter(
            "quartermaster_prometheus_query_errors_total", "Failed Prometheus queries, by reason.",
            ["reason"], registry=r)
        self.metrics_age = Gauge(
            "quartermaster_metrics_age_seconds", "Age of the newest usage figures the operator holds.",
            registry=r)
        self.forecast_coverage = Gauge(
            "quartermaster_forecast_coverage_ratio",
            "Share of a pool's actual usage at or under its upper-quantile forecast.",
            ["pool", "resource"], registry=r)
        self.forecast_scaled_error = Gauge(
            "quartermaster_forecast_scaled_error_ratio",
            "A pool's forecast error over its usage's mean one-step change (MASE).",
            ["pool", "resource"], registry=r)
        self.actions = Counter(
            "quartermaster_actions_total", "Actions taken through providers, by kind and result.",
            ["kind", "result"], registry=r)
        r.register(_PoolFigures(lambda: self.pool_statuses()))

    def serve(self, port: int, host: str) -> None:
        """/metrics on its own thread (prometheus_client's server)."""
        start_http_server(port, addr=host, registry=self.registry)


class _PoolFigures:
    """quartermaster_pool_<figure>{pool, resource} for every POOL_FIGURES figure (the
    families are listed even with no pool, so a scrape always names them)."""

    def __init__(self, statuses: Callable[[], Mapping[str, Mapping]]) -> None:
        self.statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        statuses = self.statuses()
        for figure, documentation in POOL_FIGURES.items():
            family = GaugeMetricFamily(f"quartermaster_pool_{figure}", documentation, labels=["pool", "resource"])
            for pool, status in sorted(statuses.items()):
                for resource, amount in sorted((status.get(figure) or {}).items()):
                    if amount is not None:
                        family.add_metric([pool, resource], to_float(amount))
            yield family
