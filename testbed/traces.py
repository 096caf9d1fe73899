"""The bundled real traces (traces/) as Kubernetes container usage over wall-clock time.

A trace becomes one workload's usage (TraceUsage): its cores are the trace scaled to
`peak_cores` at the trace's own maximum (CPU-percent traces map 100 % to `peak_cores`),
and its working-set memory follows the same shape on top of a base. The trace is laid over
wall-clock time so that `start` (a session's start) falls in its middle: the first half
is the history before `start`, the second half the live usage after it, and then it
repeats. Between samples usage is linearly interpolated, and the cpu counter is its exact
integral, so a counter backfilled up to `start` and one counted live after it join up.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, TextIO

import numpy as np

TRACES = Path(__file__).resolve().parent / "traces"
# kube-state-metrics' unit label of each resource of kube_pod_container_resource_requests
REQUEST_UNITS = {"cpu": "core", "memory": "byte", "nvidia_com_gpu": "integer"}


@dataclass(frozen=True)
class Workload:
    """One container's samples, as promtool backfills them or the exporter serves them."""

    namespace: str
    pod: str
    container: str
    timestamps: np.ndarray  # unix seconds, increasing
    cpu_seconds_total: np.ndarray  # the cumulative counter cAdvisor exports
    memory_bytes: np.ndarray
    # the container's requests as kube-state-metrics names them ("cpu" cores, "memory"
    # bytes, "nvidia_com_gpu"), the same at every timestamp
    requests: Mapping[str, float] = field(default_factory=dict)


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    stamps = np.array([
        datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        for row in rows
    ])
    values = np.array([float(row["value"]) for row in rows])
    return stamps, values


class TraceUsage:
    """One workload's usage at any wall-clock time, from a trace laid around `start`."""

    def __init__(self, path: Path, start: float, peak_cores: float = 2.0,
                 base_memory: float = 256 * 2**20, peak_memory: float = 1024 * 2**20):
        stamps, values = read_trace(path)
        values = np.clip(values, 0, None)
        scale = 100.0 if "cpu_utilization" in path.name else max(float(values.max()), 1e-9)
        shape = values / scale
        step = float(np.median(np.diff(stamps)))
        # The trace repeats after its span plus one step; the closing knot at `period`
        # repeats the first sample, so interpolation wraps from the last sample to it.
        self.period = float(stamps[-1] - stamps[0]) + step
        self.origin = start - self.period / 2  # wall-clock time of the first sample
        self.knots = np.append(stamps - stamps[0], self.period)
        self.cores = np.append(shape, shape[0]) * peak_cores
        self.memory = base_memory + np.append(shape, shape[0]) * (peak_memory - base_memory)
        # core-seconds from the first sample to each knot (trapezoids: usage is linear between)
        self._area = np.concatenate(([0.0], np.cumsum(np.diff(self.knots) * (self.cores[:-1] + self.cores[1:]) / 2)))

    def _phase(self, t) -> tuple[np.ndarray, np.ndarray]:
        """Whole repetitions since the origin, and seconds into the current one."""
        return np.divmod(np.asarray(t, dtype=float) - self.origin, self.period)

    def cpu_cores(self, t) -> np.ndarray:
        return np.interp(self._phase(t)[1], self.knots, self.cores)

    def memory_bytes(self, t) -> np.ndarray:
        return np.interp(self._phase(t)[1], self.knots, self.memory)

    def _cpu_seconds_since_origin(self, t) -> np.ndarray:
        turns, phase = self._phase(t)
        knot = np.clip(np.searchsorted(self.knots, phase, side="right") - 1, 0, len(self.knots) - 2)
        partial = (phase - self.knots[knot]) * (self.cores[knot] + np.interp(phase, self.knots, self.cores)) / 2
        return turns * self._area[-1] + self._area[knot] + partial

    def cpu_seconds(self, since: float, until) -> np.ndarray:
        """Core-seconds used from `since` to `until` (the cpu counter's increase)."""
        return self._cpu_seconds_since_origin(until) - self._cpu_seconds_since_origin(since)


def workload_from_trace(usage: TraceUsage, namespace: str, pod: str, end: float, share: float = 1.0,
                        days: float = 7, step: float = 300, container: str = "app") -> Workload:
    """`share` of the usage sampled every `step` seconds for `days` up to `end` (included),
    the counter starting from zero at the first sample."""
    stamps = np.arange(end - days * 86400, end + step / 2, step)
    return Workload(
        namespace=namespace, pod=pod, container=container, timestamps=stamps,
        cpu_seconds_total=share * usage.cpu_seconds(stamps[0], stamps),
        memory_bytes=share * usage.memory_bytes(stamps),
    )


def write_openmetrics(workloads: Iterable[Workload], out: TextIO, stamped: bool = True) -> None:
    """OpenMetrics text: with timestamps for `promtool tsdb create-blocks-from openmetrics`,
    without them for a scrape (Prometheus stamps it, and marks vanished pods stale); the
    cAdvisor usage series, and kube-state-metrics' requests of the containers that have any."""
    workloads = list(workloads)

    def family(metric: str, kind: str, values: str, digits: int) -> None:
        out.write(f"# TYPE {metric.removesuffix('_total')} {kind}\n")
        for w in workloads:
            labels = f'namespace="{w.namespace}",pod="{w.pod}",container="{w.container}"'
            for t, v in zip(w.timestamps, getattr(w, values)):
                out.write(f"{metric}{{{labels}}} {v:.{digits}f}{f' {t:.0f}' if stamped else ''}\n")

    family("container_cpu_usage_seconds_total", "counter", "cpu_seconds_total", 6)
    family("container_memory_working_set_bytes", "gauge", "memory_bytes", 0)
    if any(w.requests for w in workloads):
        out.write("# TYPE kube_pod_container_resource_requests gauge\n")
    for w in workloads:
        for resource, amount in w.requests.items():
            labels = (f'namespace="{w.namespace}",pod="{w.pod}",container="{w.container}",'
                      f'resource="{resource}",unit="{REQUEST_UNITS[resource]}"')
            for t in w.timestamps:
                stamp = f" {t:.0f}" if stamped else ""
                out.write(f"kube_pod_container_resource_requests{{{labels}}} {amount:.12g}{stamp}\n")
    out.write("# EOF\n")
