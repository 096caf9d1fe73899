"""The operator's own metrics (prometheus_client), served at /metrics.

One registry per operator, passed to the cycle, so tests and benchmarks can make their own.
Names follow Prometheus's conventions: `quartermaster_` prefix, base units, `_total` counters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Cycles take from milliseconds (a small cluster) to tens of seconds (10,000 workloads).
_CYCLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


@dataclass
class Telemetry:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

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

    def serve(self, port: int, host: str) -> None:
        """/metrics on its own thread (prometheus_client's server)."""
        start_http_server(port, addr=host, registry=self.registry)
