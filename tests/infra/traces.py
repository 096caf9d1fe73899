"""Real traces ($QM_SHARED/data/traces) turned into Kubernetes container metrics.

Each trace becomes one workload's container: its usage in cores is the trace scaled to
`peak_cores` at the trace's own maximum (CPU-percent traces map 100 % to `peak_cores`), and
its working-set memory follows the same shape on top of a base. Timestamps are shifted so
that the last sample lands at `end`, so the history is "recent" for the Prometheus fixture.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# The shared data folder: $QM_SHARED (the Makefile exports its SHARED), else ../shared
# beside the repository.
SHARED = Path(os.environ.get("QM_SHARED") or Path(__file__).resolve().parents[3] / "shared")
TRACES = SHARED / "data" / "traces"


@dataclass(frozen=True)
class Workload:
    namespace: str
    pod: str
    container: str
    timestamps: np.ndarray  # unix seconds, increasing
    cpu_cores: np.ndarray
    memory_bytes: np.ndarray

    @property
    def cpu_seconds_total(self) -> np.ndarray:
        """The cumulative counter cAdvisor would export: cores integrated over time."""
        step = np.diff(self.timestamps, prepend=self.timestamps[0])
        return np.cumsum(self.cpu_cores * step)


def read_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    stamps = np.array([
        datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        for row in rows
    ])
    values = np.array([float(row["value"]) for row in rows])
    return stamps, values


def workload_from_trace(path: Path, namespace: str, end: float, days: float = 14,
                        peak_cores: float = 2.0, base_memory: float = 256 * 2**20,
                        peak_memory: float = 1024 * 2**20) -> Workload:
    stamps, values = read_trace(path)
    end = float(int(end))  # whole seconds, as the samples are written
    keep = stamps >= stamps[-1] - days * 86400
    stamps, values = stamps[keep], np.clip(values[keep], 0, None)
    scale = 100.0 if "cpu_utilization" in path.name else max(float(values.max()), 1e-9)
    shape = values / scale
    pod = path.stem.lower().replace("_", "-")
    return Workload(
        namespace=namespace, pod=pod, container="app",
        timestamps=stamps - stamps[-1] + end,
        cpu_cores=shape * peak_cores,
        memory_bytes=base_memory + shape * (peak_memory - base_memory),
    )


def bundled_workloads(end: float, days: float = 14, traces: Path = TRACES) -> list[Workload]:
    """Every bundled trace as a workload, spread over three team namespaces."""
    files = sorted(traces.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no traces in {traces}")
    return [workload_from_trace(path, f"team-{'abc'[i % 3]}", end, days) for i, path in enumerate(files)]


def write_openmetrics(workloads: list[Workload], path: Path) -> None:
    """OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`."""
    with open(path, "w") as out:
        out.write("# TYPE container_cpu_usage_seconds counter\n")
        for w in workloads:
            labels = f'namespace="{w.namespace}",pod="{w.pod}",container="{w.container}"'
            for t, v in zip(w.timestamps, w.cpu_seconds_total):
                out.write(f"container_cpu_usage_seconds_total{{{labels}}} {v:.6f} {t:.0f}\n")
        out.write("# TYPE container_memory_working_set_bytes gauge\n")
        for w in workloads:
            labels = f'namespace="{w.namespace}",pod="{w.pod}",container="{w.container}"'
            for t, v in zip(w.timestamps, w.memory_bytes):
                out.write(f"container_memory_working_set_bytes{{{labels}}} {v:.0f} {t:.0f}\n")
        out.write("# EOF\n")
