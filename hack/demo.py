#!/usr/bin/env python3
"""`make demo`: a kwok-simulated cluster, the CRDs, examples/, usage for the example
workloads following the bundled traces (7 days of history, then live) in a real
Prometheus, and the operator (with only the chart's RBAC) reading it; left running until
`make demo-down`.

    hack/demo.py up     start everything, print `kubectl get resourcepools -o wide`
    hack/demo.py down   stop everything the demo started and remove .demo/
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import yaml
from kubernetes import client

from quartermaster.testbed.cluster import ControlPlane, SimulatedCluster
from quartermaster.testbed.operator import install_chart_rbac, start_operator
from quartermaster.testbed.processes import REPO, PollTimeout, Process, free_port, poll, testbed_binaries
from quartermaster.testbed.prometheus import Prometheus
from quartermaster.testbed.traces import TRACES
from quartermaster.testbed.usage import UsageDrive, UsageExporter, running_pods

WORKDIR = REPO / ".demo"
STATE = WORKDIR / "state.json"  # {"pids": [...]}, in start order, rewritten as each starts
EXAMPLES = REPO / "examples"
# Four fake nodes: enough room for examples/ and for the pool to show pressure when scaled.
NODES = {"kwok-node-1": ("8", "32Gi"), "kwok-node-2": ("8", "32Gi"),
         "kwok-node-3": ("16", "64Gi"), "kwok-node-4": ("4", "16Gi")}
# Each example Deployment's usage: a bundled trace, and the cores that its 100 % (CPU-percent
# traces) or its maximum (the others) stands for, near what the Deployment requests.
USAGE = {"web": ("ec2_cpu_utilization_5f5533.csv", 3), "api": ("rds_cpu_utilization_cc0c53.csv", 4),
         "batch": ("grok_asg_anomaly.csv", 2)}


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _record(started: list[Process]):
    """An on_spawn hook: remember the process and rewrite STATE, so that `make demo-down`
    finds every server even if this script dies half-way."""
    def record(process: Process) -> None:
        started.append(process)
        STATE.write_text(json.dumps({"pids": [p.popen.pid for p in started]}))
    return record


def up() -> int:
    if STATE.exists():
        say(f"already running (state in {STATE}); `make demo-down` first")
        return 1
    # No STATE: nothing of an earlier demo runs; drop its leftovers (etcd data, logs).
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()
    started: list[Process] = []
    record = _record(started)
    # `kill` / `timeout` send SIGTERM: unwind through the cleanup below as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bin_dir = testbed_binaries()
        plane = ControlPlane(bin_dir, WORKDIR / "cluster", on_spawn=record).start()
        cluster = SimulatedCluster(plane, on_spawn=record).start()
        say(f"control plane at {plane.server}; kwok simulates the nodes")
        for name, (cpu, memory) in NODES.items():
            cluster.add_node(name, cpu, memory)
        plane.install_crds(REPO / "crds")
        kubeconfig = install_chart_rbac(plane, "demo", "quartermaster-system", WORKDIR / "operator.kubeconfig")
        for namespace in _documents("00-namespaces.yaml", "Namespace"):
            plane.create_namespace(namespace["metadata"]["name"], namespace["metadata"].get("labels"))
        plane.kubectl("apply", "-f", str(EXAMPLES))
        exporter = UsageExporter(WORKDIR / "usage", plane.admin_kubeconfig, _usage_drives(plane),
                                 on_spawn=record).start()
        prometheus = Prometheus(WORKDIR / "prometheus", exporter.backfill(), scrape_targets=[exporter.address],
                                on_spawn=record).start()
        say(f"Prometheus at {prometheus.url}: 7 days of the example pods' usage from the bundled traces, "
            f"then live from {exporter.url}")
        metrics_port, api_port = free_port(), free_port()
        start_operator(kubeconfig, WORKDIR / "operator.log", "--resync-seconds=15",
                       f"--prometheus-url={prometheus.url}", f"--metrics-port={metrics_port}",
                       "--metrics-host=127.0.0.1", f"--api-port={api_port}", "--api-host=127.0.0.1",
                       "--metrics-step-seconds=60", on_spawn=record)
        say("operator running with the chart's ServiceAccount")
    except BaseException as error:
        for process in reversed(started):
            process.stop()
        STATE.unlink(missing_ok=True)
        say(f"{'failed: ' + str(error) if isinstance(error, Exception) else 'interrupted'}; "
            f"stopped what had started (logs in {WORKDIR})")
        if isinstance(error, KeyboardInterrupt):
            return 130
        if not isinstance(error, Exception):
            raise
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _wait_for_pool(plane, "general", members=_example_replicas())
    print(plane.kubectl("get", "resourcepools", "-o", "wide").stdout)
    say("running. Try:")
    print(f"  export KUBECONFIG={plane.admin_kubeconfig}")
    print(f"  {bin_dir / 'kubectl'} get quartermaster -A")
    print(f"  {bin_dir / 'kubectl'} describe resourcepool general")
    print(f"  {bin_dir / 'kubectl'} -n team-a describe scalingpolicy web   # why web has the replicas it has")
    # api has no ScalingPolicy, so nothing undoes this, and the pool's requests follow it
    print(f"  {bin_dir / 'kubectl'} -n team-b scale deployment api --replicas=8")
    print(f"  Prometheus: {prometheus.url}")
    print(f"  operator metrics: http://127.0.0.1:{metrics_port}/metrics   operator log: {WORKDIR / 'operator.log'}")
    print(f"  REST API: http://127.0.0.1:{api_port} (/openapi.json; a bearer token: "
          f"{bin_dir / 'kubectl'} create token <serviceaccount>)")
    say("stop it with: make demo-down")
    return 0


def _documents(filename: str, kind: str) -> list[dict]:
    docs = yaml.safe_load_all((EXAMPLES / filename).read_text())
    return [doc for doc in docs if doc and doc.get("kind") == kind]


def _usage_drives(plane: ControlPlane, timeout: float = 120) -> list[UsageDrive]:
    """One drive per example Deployment, once all its pods run; those pods (whose names
    are only known now) get the backfilled history."""
    drives = []
    with plane.api_client() as api:
        core = client.CoreV1Api(api)
        for deployment in _documents("10-workloads.yaml", "Deployment"):
            namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
            selector = deployment["spec"]["selector"]["matchLabels"]
            replicas = deployment["spec"].get("replicas", 1)
            pods = poll(lambda: len(found := running_pods(core, namespace, selector)) == replicas and found,
                        timeout, f"{replicas} Running pods of {namespace}/{name}", interval=1)
            trace, peak_cores = USAGE[name]
            drives.append(UsageDrive(namespace, selector, TRACES / trace, peak_cores=peak_cores,
                                     backfill_pods=tuple(pods)))
    return drives


def _example_replicas() -> int:
    """The pods examples/ starts (a Deployment without replicas, web, starts one; its HPA
    may add more), all of them in the example pool's team namespaces."""
    return sum(d["spec"].get("replicas", 1) for d in _documents("10-workloads.yaml", "Deployment"))


def _wait_for_pool(plane: ControlPlane, name: str, members: int, timeout: float = 90) -> None:
    """Until the pool is Ready and counts every example pod (at least `members`)."""
    def settled() -> bool:
        result = plane.kubectl("get", "resourcepool", name, "-o", "json", check=False)
        status = json.loads(result.stdout or "{}").get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        return ready and status.get("members", 0) >= members

    try:
        poll(settled, timeout, f"pool {name}", interval=1)
    except PollTimeout:
        say(f"pool {name} is not ready yet; see {WORKDIR / 'operator.log'}")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(pid: int, grace: float = 15) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        poll(lambda: not _alive(pid), grace, f"pid {pid} to exit", interval=0.2)
    except PollTimeout:
        os.killpg(pid, signal.SIGKILL)


def down() -> int:
    if not STATE.exists():
        say("nothing running")
        shutil.rmtree(WORKDIR, ignore_errors=True)
        return 0
    # Operator first, etcd last: each server leads its own session.
    for pid in reversed(json.loads(STATE.read_text())["pids"]):
        _terminate(pid)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    say("stopped")
    return 0


if __name__ == "__main__":
    commands = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]]())
