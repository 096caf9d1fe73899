#!/usr/bin/env python3
"""Time the operator's control cycle against a real Prometheus (`make bench-cycle`).

For each size: a synthetic cluster of that many Deployments (one pod each, ~100
namespaces, 10 ResourcePools) whose cpu and memory follow the bundled real traces, with
7 days of 5-minute history backfilled into Prometheus by promtool (built once per size and
seed, cached under ~/.cache/quartermaster/bench-cycle/; see synthetic_cluster.py). The
cycle runs in a child process, so that its peak RSS is the operator's alone: a cold cycle
(the first `compute`, which pulls the whole history) and a steady one (`now` one step
later, which pulls only the new samples), each run on a thread as the operator runs it, beside a
coroutine that measures how long the event loop (and so the liveness probe) is kept waiting.
Targets at 10,000 workloads: steady cycle < 30 s, cold < 5 min, peak RSS < 1 GiB.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from quartermaster.testbed.prometheus import Prometheus, _tool
from quartermaster.testbed.traces import TRACES
from synthetic_cluster import (COLD_NOW, CONCURRENT_PROMTOOLS, HISTORY_SECONDS, STEP_SECONDS,
                               SyntheticCluster)  # beside this file

TARGET_SIZE = 10_000
TARGETS = {"cold": 300.0, "steady": 30.0}  # seconds per cycle at TARGET_SIZE
RSS_TARGET = 2**30
CHILD_TIMEOUT = 1800


@dataclass
class CachedPrometheus(Prometheus):
    """The test bed's Prometheus on a cached TSDB: its blocks hard-linked into `workdir`, so
    the cache itself is never written; compaction off (it would rewrite the blocks, and
    compete with the cycle for the CPU) and retention long enough for history at EPOCH."""

    blocks: Path = field(kw_only=True)

    def _start(self) -> None:
        shutil.copytree(self.blocks, self.tsdb, copy_function=os.link)
        prometheus = self._spawn("prometheus", [
            _tool("prometheus"), f"--config.file={self._write_config()}", f"--storage.tsdb.path={self.tsdb}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y",
            "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
        ])
        prometheus.wait_until(lambda: urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200,
                              300, "ready")


def peak_rss_bytes() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: Linux carries that over exec from
    the process that forked, here the parent, whose peak (building a TSDB) is not the cycle's."""
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    return int(kib) * 1024


@contextmanager
def progress(what: str, every: float = 30.0):
    """Print `what` and the seconds so far every `every` seconds until the block ends."""
    done, started = threading.Event(), time.perf_counter()

    def tick() -> None:
        while not done.wait(every):
            print(f"  {what}: {time.perf_counter() - started:.0f} s so far", file=sys.stderr, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


def run_cycles(url: str, size: int, seed: int, traces: Path) -> dict:
    """In the child: a cold and a steady cycle over the synthetic cluster's objects."""
    from quartermaster.operator.cycle import ControlCycle
    from quartermaster.operator.observe import snapshot_from_objects
    from quartermaster.operator.settings import MetricsSettings, OperatorSettings

    # The operator keeps records like the snapshot's, not the objects they are read from.
    snapshot = snapshot_from_objects(**SyntheticCluster(size, seed, traces).objects())
    cycle = ControlCycle(OperatorSettings(metrics=MetricsSettings(
        prometheus_url=url, step_seconds=STEP_SECONDS, history_seconds=HISTORY_SECONDS)))
    figures = {"rss_before_bytes": peak_rss_bytes()}
    for name, now in (("cold", COLD_NOW), ("steady", COLD_NOW + STEP_SECONDS)):
        started = time.perf_counter()
        with progress(f"{name} cycle"):
            result, lag = asyncio.run(beside_a_probe(cycle, snapshot, now))
        figures[name] = {"seconds": time.perf_counter() - started, "timings": result.timings, "loop_lag": lag,
                         "workloads": result.workloads, "peak_rss_bytes": peak_rss_bytes(),
                         "metrics_error": None if result.metrics_error is None else str(result.metrics_error)}
        print(f"  {name} cycle: {figures[name]['seconds']:.1f} s", file=sys.stderr, flush=True)
    return figures


async def beside_a_probe(cycle, snapshot, now: float):
    """The cycle's compute as the operator runs it, on a thread, beside a coroutine that
    stands in for the liveness probe: the result, and the longest the event loop kept that
    coroutine waiting past its 50 ms sleep."""
    worst, done = 0.0, asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.05)
            worst = max(worst, time.perf_counter() - started - 0.05)

    task = asyncio.create_task(probe())
    try:
        result = await asyncio.to_thread(cycle.compute, snapshot, now)
    finally:
        done.set()
        await task
    return result, worst


def measure(size: int, seed: int, traces: Path) -> tuple[dict, dict]:
    """Build (or reuse) the size's TSDB, serve it, and run the cycles in a child process."""
    cluster = SyntheticCluster(size, seed, traces)
    if not (cluster.cache_dir / "manifest.json").exists():
        print(f"{size:,} workloads: building the TSDB in {cluster.cache_dir} (once; later runs reuse it)",
              flush=True)
    blocks, backfill = cluster.tsdb(log=lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as scratch:
        prometheus = CachedPrometheus(Path(scratch), workloads=[], blocks=blocks).start()
        try:
            print(f"{size:,} workloads: Prometheus at {prometheus.url}; running the cycles", flush=True)
            child = subprocess.run(
                [sys.executable, __file__, "--child-url", prometheus.url, "--sizes", str(size),
                 "--seed", str(seed), "--traces", str(traces)],
                stdout=subprocess.PIPE, text=True, timeout=CHILD_TIMEOUT)
        finally:
            prometheus.stop()
    if child.returncode != 0:
        raise RuntimeError(f"the cycle's child process failed (exit {child.returncode})")
    return backfill, json.loads(child.stdout)


def mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def verdict(value: float, limit: float, text: str) -> str:
    return f"< {text} {'ok' if value < limit else 'MISSED'}"


def report(results: dict[int, tuple[dict, dict]]) -> bool:
    """Print the backfills and the table; True when every target is met."""
    print()
    for size, (backfill, _) in results.items():
        print(f"backfill, {size:,} workloads{' (cached, built by an earlier run)' if backfill['cached'] else ''}: "
              f"{backfill['samples'] / 1e6:.1f} M samples, {backfill['openmetrics_bytes'] / 1e9:.1f} GB of "
              f"OpenMetrics, written and backfilled in {backfill['build_seconds']:.0f} s (promtool ran "
              f"{backfill['promtool_seconds']:.0f} s in all, {CONCURRENT_PROMTOOLS} at a time beside the writing)")
    stages = list(dict.fromkeys(stage for _, cycles in results.values() for name in TARGETS
                                for stage in cycles[name]["timings"]))
    rows = [["workloads", "cycle", "seconds", "target", *stages, "observed", "loop lag", "peak RSS", "target"]]
    met = True
    for size, (_, cycles) in results.items():
        judged = size == TARGET_SIZE
        for name, limit in TARGETS.items():
            cycle = cycles[name]
            rows.append([f"{size:,}", name, f"{cycle['seconds']:.2f}",
                         verdict(cycle["seconds"], limit, f"{limit:g} s") if judged else "",
                         *(f"{cycle['timings'].get(stage, 0):.2f}" for stage in stages),
                         f"{cycle['workloads']:,}", f"{cycle['loop_lag'] * 1000:.0f} ms", mib(cycle["peak_rss_bytes"]),
                         verdict(cycle["peak_rss_bytes"], RSS_TARGET, "1 GiB") if judged else ""])
            met &= not judged or (cycle["seconds"] < limit and cycle["peak_rss_bytes"] < RSS_TARGET)
            if cycle["metrics_error"]:
                print(f"{size:,} workloads, {name} cycle: usage not read: {cycle['metrics_error']}")
                met = False
            if cycle["workloads"] != size:
                print(f"{size:,} workloads, {name} cycle: {cycle['workloads']:,} workloads observed")
                met = False
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text_columns = {1, 3, len(widths) - 1}
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) if i in text_columns else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(row, widths))).rstrip())
    print(f"\nstage columns: result.timings, seconds; loop lag: the longest the event loop was held "
          f"while the cycle ran on its thread (what the liveness probe would wait); peak RSS: the "
          f"cycle's process after that cycle "
          f"(before the first cycle: {', '.join(mib(c['rss_before_bytes']) for _, c in results.values())})")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000", help="workload counts, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traces", type=Path, default=TRACES, help="the folder of trace CSVs (timestamp,value)")
    parser.add_argument("--child-url", help=argparse.SUPPRESS)  # the child process: run the cycles against it
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.child_url:
        print(json.dumps(run_cycles(args.child_url, sizes[0], args.seed, args.traces)))
        return 0
    # `make` and CI stop with SIGTERM: exit through the `finally`s that stop Prometheus and promtool.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.perf_counter()
    results = {size: measure(size, args.seed, args.traces) for size in sizes}
    met = report(results)
    print(f"bench-cycle took {time.perf_counter() - started:.0f} s")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
