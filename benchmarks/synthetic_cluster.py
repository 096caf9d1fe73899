"""A synthetic cluster for `benchmarks/cycle.py`: N Deployments whose usage follows the
bundled real traces, as the Kubernetes objects the operator would index and as a
Prometheus TSDB backfilled with promtool (built once per size and seed, then cached).

Every workload is one pod of its own Deployment (`<deployment>-<hash>-<suffix>`), spread
over NAMESPACES namespaces; POOLS ResourcePools each select a tenth of the namespaces and
their own nodes. A workload's cpu follows one trace and its memory another (the test bed's
TraceUsage), each scaled per workload and shifted in time by a random offset (fixed seed),
written as the test bed writes cAdvisor's `container_cpu_usage_seconds_total` and
`container_memory_working_set_bytes`.

History is stored relative to a fixed EPOCH, so a cached TSDB stays valid: the cycle's
`now` is COLD_NOW (EPOCH + 7 days), and the samples run MARGIN_SECONDS beyond both ends
(before, for the cpu query's rate window; after, for the steady cycles that follow).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np

from quartermaster.testbed.prometheus import _tool
from quartermaster.testbed.traces import TRACES, TraceUsage, Workload, write_openmetrics

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quartermaster" / "bench-cycle"

EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
STEP_SECONDS = 300
HISTORY_SECONDS = 7 * 86400
COLD_NOW = EPOCH + HISTORY_SECONDS
MARGIN_SECONDS = 3600
# promtool cuts `--max-block-duration=24h` into blocks of 18 h (the largest 2 h x 3^n within
# it, aligned to the unix epoch); one OpenMetrics file per block is parsed once.
BLOCK_SECONDS = 18 * 3600
BACKFILL_FLAG = "--max-block-duration=24h"
# promtool waits on the disk much of the time: three at once keep both cores busy.
CONCURRENT_PROMTOOLS = 3
FINGERPRINT_DEPLOYMENTS = 16  # how many deployments' history the cache key is taken from
NAMESPACES = 100
POOLS = 10
PODS_PER_NODE = 100
CONTAINER = "app"
# The alphabet of the names Kubernetes generates (pod-template-hash, pod suffixes): no vowels.
NAME_ALPHABET = np.array(list("bcdfghjklmnpqrstvwxz2456789"))
SERVICES = ["api", "auth", "billing", "cart", "catalog", "checkout", "frontend", "gateway", "inventory",
            "ledger", "mailer", "orders", "payments", "pricing", "recommend", "search", "session",
            "shipping", "stock", "users"]
ROLES = ["web", "worker", "consumer", "cron", "grpc", "cache", "indexer", "sync", "export", "admin"]


@dataclass(frozen=True)
class Deployment:
    """A Deployment of one pod: its names, its requests, and where its usage comes from."""

    namespace: str
    name: str
    template_hash: str
    pod: str
    cpu_request_millicores: int
    memory_request_bytes: int
    cpu_trace: int
    cpu_shift_seconds: float  # how far into its trace the history starts
    cpu_peak_cores: float  # usage at the trace's maximum
    cpu_seconds_at_start: float  # the counter before the history: the container ran before
    memory_trace: int
    memory_shift_seconds: float
    memory_base_bytes: float
    memory_swing_bytes: float  # added at the trace's maximum


def sample_times() -> np.ndarray:
    """The history's timestamps, unix seconds: MARGIN_SECONDS either side of the cold window."""
    return np.arange(EPOCH - MARGIN_SECONDS, COLD_NOW + MARGIN_SECONDS + 1, STEP_SECONDS, dtype=np.int64)


def unit_usages(folder: Path) -> dict[Path, TraceUsage]:
    """Each trace's usage shape: 1 core and 1 byte at the trace's maximum, 0 at zero."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no traces in {folder}")
    usages = {path: TraceUsage(path, EPOCH, peak_cores=1.0, base_memory=0.0, peak_memory=1.0) for path in files}
    # CPU-percent traces map 100 % to the peak: rescale those to their own maximum.
    return {path: TraceUsage(path, EPOCH, peak_cores=1 / u.cores.max(), base_memory=0.0,
                             peak_memory=1 / u.memory.max()) for path, u in usages.items()}


def random_names(rng: np.random.Generator, count: int, length: int) -> list[str]:
    return ["".join(row) for row in rng.choice(NAME_ALPHABET, size=(count, length))]


def make_deployments(size: int, seed: int, periods: list[float]) -> list[Deployment]:
    """`size` Deployments over NAMESPACES namespaces; `periods` are the traces' spans in seconds."""
    rng = np.random.default_rng(seed)
    names = [f"{service}-{role}" for service in SERVICES for role in ROLES]
    hashes = random_names(rng, size, 10)
    suffixes = random_names(rng, size, 5)
    cpu_trace = rng.integers(len(periods), size=size)
    memory_trace = rng.integers(len(periods), size=size)
    cpu_shift = rng.uniform(0, 1, size=size) * np.array(periods)[cpu_trace]
    memory_shift = rng.uniform(0, 1, size=size) * np.array(periods)[memory_trace]
    cpu_peak = np.clip(rng.lognormal(np.log(0.5), 1.0, size=size), 0.01, 16)
    memory_base = rng.lognormal(np.log(256 * 2**20), 0.8, size=size)
    memory_swing = memory_base * rng.uniform(0.1, 1.0, size=size)
    cpu_request = np.maximum(10, np.round(cpu_peak * rng.uniform(0.3, 1.0, size=size) * 1000)).astype(int)
    memory_request = (np.ceil((memory_base + memory_swing) * rng.uniform(0.8, 1.5, size=size) / 2**20)
                      * 2**20).astype(int)
    cpu_at_start = cpu_peak * rng.uniform(0, 30 * 86400, size=size)
    deployments = []
    for i in range(size):
        slot = i // NAMESPACES
        name = names[slot % len(names)] + (f"-{slot // len(names)}" if slot >= len(names) else "")
        deployments.append(Deployment(
            namespace=f"team-{i % NAMESPACES:02d}", name=name, template_hash=hashes[i],
            pod=f"{name}-{hashes[i]}-{suffixes[i]}",
            cpu_request_millicores=int(cpu_request[i]), memory_request_bytes=int(memory_request[i]),
            cpu_trace=int(cpu_trace[i]), cpu_shift_seconds=float(cpu_shift[i]),
            cpu_peak_cores=float(cpu_peak[i]), cpu_seconds_at_start=float(cpu_at_start[i]),
            memory_trace=int(memory_trace[i]), memory_shift_seconds=float(memory_shift[i]),
            memory_base_bytes=float(memory_base[i]), memory_swing_bytes=float(memory_swing[i])))
    return deployments


def samples(deployments: list[Deployment], stamps: np.ndarray, cpu_seconds: np.ndarray,
            memory: np.ndarray) -> Iterator[Workload]:
    """The deployments' rows of `usage()` arrays as the test bed's samples, to write."""
    return (Workload(d.namespace, d.pod, CONTAINER, stamps, cpu_seconds[i], memory[i])
            for i, d in enumerate(deployments))


class SyntheticCluster:
    def __init__(self, size: int, seed: int, traces: Path = TRACES) -> None:
        self.size, self.seed = size, seed
        self.usages = unit_usages(traces)
        self.deployments = make_deployments(size, seed, [u.period for u in self.usages.values()])

    @cached_property
    def cache_dir(self) -> Path:
        """Keyed by size and seed, and by a fingerprint of what the TSDB would hold: the
        OpenMetrics of a sample of the deployments over the whole history, so that a change
        to the traces, to how usage is drawn from them or to how it is written builds afresh
        (and an edit that changes none of it does not)."""
        sample = self.deployments[::max(1, self.size // FINGERPRINT_DEPLOYMENTS)]
        text = io.StringIO()
        write_openmetrics(samples(sample, sample_times(), *self.usage(sample)), text)
        digest = hashlib.sha256(f"{BACKFILL_FLAG} {BLOCK_SECONDS}\n{text.getvalue()}".encode()).hexdigest()[:12]
        return CACHE / f"{self.size}-workloads-seed{self.seed}-{digest}"

    def usage(self, deployments: list[Deployment]) -> tuple[np.ndarray, np.ndarray]:
        """[deployment, sample] arrays over sample_times(): the cpu counter (cores x s) and
        the working-set bytes."""
        stamps = sample_times().astype(float)
        usages = list(self.usages.values())
        cpu_seconds = np.empty((len(deployments), len(stamps)))
        memory = np.empty((len(deployments), len(stamps)))
        for i, d in enumerate(deployments):
            shifted = stamps + d.cpu_shift_seconds
            cpu_seconds[i] = d.cpu_seconds_at_start + d.cpu_peak_cores * usages[d.cpu_trace].cpu_seconds(
                shifted[0], shifted)
            memory[i] = d.memory_base_bytes + d.memory_swing_bytes * usages[d.memory_trace].memory_bytes(
                stamps + d.memory_shift_seconds)
        return cpu_seconds, memory

    def objects(self) -> dict[str, list[dict]]:
        """nodes, pods, namespaces and pools, shaped as `kubectl get -o json` items."""
        nodes_per_pool = -(-self.size // (POOLS * PODS_PER_NODE))
        pool_names = [f"pool-{p}" for p in range(POOLS)]
        nodes = [{
            "metadata": {"name": f"{pool}-node-{n:03d}", "labels": {"quartermaster.dev/pool": pool}},
            "spec": {},
            "status": {"allocatable": {"cpu": "48", "memory": "192Gi", "pods": "110"}},
        } for pool in pool_names for n in range(nodes_per_pool)]
        namespaces = sorted({d.namespace for d in self.deployments})
        pool_of = {ns: pool_names[i * POOLS // len(namespaces)] for i, ns in enumerate(namespaces)}
        pods = [{
            "metadata": {
                "namespace": d.namespace, "name": d.pod, "uid": f"pod-{i}",
                "labels": {"app": d.name, "pod-template-hash": d.template_hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                                     "name": f"{d.name}-{d.template_hash}", "uid": f"replicaset-{i}"}],
            },
            "spec": {
                "nodeName": f"{pool_of[d.namespace]}-node-{i // len(namespaces) % nodes_per_pool:03d}",
                "containers": [{"name": CONTAINER, "resources": {"requests": {
                    "cpu": f"{d.cpu_request_millicores}m", "memory": str(d.memory_request_bytes)}}}],
            },
            "status": {"phase": "Running"},
        } for i, d in enumerate(self.deployments)]
        return {
            "nodes": nodes,
            "pods": pods,
            "namespaces": [{"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}}
                           for ns in namespaces],
            "pools": [{
                "apiVersion": "quartermaster.dev/v1alpha1", "kind": "ResourcePool",
                "metadata": {"name": pool, "uid": f"uid-{pool}", "generation": 1},
                "spec": {"nodeSelector": {"matchLabels": {"quartermaster.dev/pool": pool}},
                         "workloads": {"namespaces": [ns for ns in namespaces if pool_of[ns] == pool]}},
            } for pool in pool_names],
        }

    def tsdb(self, log=print) -> tuple[Path, dict]:
        """The backfilled TSDB folder and its build figures (`cached`: from an earlier run)."""
        manifest = self.cache_dir / "manifest.json"
        if manifest.exists():
            return self.cache_dir / "tsdb", json.loads(manifest.read_text()) | {"cached": True}
        # This size and seed's earlier builds (other fingerprints, interrupted ones) are stale.
        for stale in CACHE.glob(f"{self.size}-workloads-seed{self.seed}-*"):
            shutil.rmtree(stale)
        partial = self.cache_dir.with_name(self.cache_dir.name + ".partial")
        (partial / "tsdb").mkdir(parents=True)
        try:
            figures = self._backfill(partial, log)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        (partial / "manifest.json").write_text(json.dumps(figures, indent=2))
        partial.rename(self.cache_dir)
        return self.cache_dir / "tsdb", figures | {"cached": False}

    def _backfill(self, folder: Path, log) -> dict:
        """One OpenMetrics file per block, each backfilled by promtool while the next is written."""
        promtool = _tool("promtool")
        started = time.perf_counter()
        stamps = sample_times()
        cpu_seconds, memory = self.usage(self.deployments)
        # sample indices where each block starts, and the end
        bounds = [*np.flatnonzero(np.diff(stamps // BLOCK_SECONDS, prepend=-1)), len(stamps)]
        written = 0
        promtool_seconds = 0.0
        running: list[tuple[subprocess.Popen, Path, float]] = []

        def finish_oldest() -> float:
            process, path, since = running.pop(0)
            if process.wait() != 0:
                raise RuntimeError(f"promtool failed on {path.name}: see {folder / 'promtool.log'}")
            path.unlink()
            return time.perf_counter() - since

        try:
            with open(folder / "promtool.log", "w") as promtool_log:
                for number, (first, end) in enumerate(zip(bounds, bounds[1:]), 1):
                    path = folder / f"block-{number}.om"
                    with open(path, "w") as out:
                        write_openmetrics(samples(self.deployments, stamps[first:end], cpu_seconds[:, first:end],
                                                  memory[:, first:end]), out)
                    written += path.stat().st_size
                    log(f"  block {number}/{len(bounds) - 1}: {written / 1e9:.1f} GB of OpenMetrics "
                        f"written, {time.perf_counter() - started:.0f} s")
                    while len(running) >= CONCURRENT_PROMTOOLS:
                        promtool_seconds += finish_oldest()
                    running.append((subprocess.Popen(
                        [promtool, "tsdb", "create-blocks-from", "openmetrics", BACKFILL_FLAG,
                         str(path), str(folder / "tsdb")],
                        stdout=promtool_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL),
                        path, time.perf_counter()))
                while running:
                    promtool_seconds += finish_oldest()
        finally:
            for process, _, _ in running:
                process.kill()
                process.wait()
        return {"workloads": self.size, "seed": self.seed, "samples": int(cpu_seconds.size + memory.size),
                "openmetrics_bytes": written, "promtool_seconds": round(promtool_seconds, 1),
                "build_seconds": round(time.perf_counter() - started, 1)}
