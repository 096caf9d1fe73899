#!/usr/bin/env python3
"""`make demo`: a kwok-simulated cluster, Prometheus with the bundled traces, the CRDs, the
operator (with only the chart's RBAC) and examples/, left running until `make demo-down`.

    hack/demo.py up     start everything, print `kubectl get resourcepools -o wide`
    hack/demo.py down   stop everything the demo started and remove .demo/
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from infra.cluster import ControlPlane, SimulatedCluster  # noqa: E402
from infra.operator import install_chart_rbac, start_operator  # noqa: E402
from infra.processes import REPO, TestbedError, testbed_binaries  # noqa: E402
from infra.prometheus import Prometheus  # noqa: E402
from infra.traces import bundled_workloads  # noqa: E402

WORKDIR = REPO / ".demo"
STATE = WORKDIR / "state.json"
# Four fake nodes: enough room for examples/ and for the pool to show pressure when scaled.
NODES = {"kwok-node-1": ("8", "32Gi"), "kwok-node-2": ("8", "32Gi"),
         "kwok-node-3": ("16", "64Gi"), "kwok-node-4": ("4", "16Gi")}


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def up() -> int:
    if STATE.exists():
        say(f"already running (state in {STATE}); `make demo-down` first")
        return 1
    WORKDIR.mkdir(exist_ok=True)
    say("building or reusing the test bed binaries (the first build takes a while)")
    bin_dir = testbed_binaries()
    processes = []
    try:
        plane = ControlPlane(bin_dir, WORKDIR / "cluster").start()
        processes += plane.processes
        cluster = SimulatedCluster(plane).start()
        processes += cluster.processes
        say(f"control plane at {plane.server}; kwok simulates the nodes")
        prometheus = Prometheus(WORKDIR / "prometheus", bundled_workloads(end=time.time() - 60)).start()
        processes.append(prometheus.process)
        say(f"Prometheus at {prometheus.url}, backfilled with 14 days of the bundled traces")
        for name, (cpu, memory) in NODES.items():
            cluster.add_node(name, cpu, memory)
        plane.install_crds(REPO / "crds")
        kubeconfig = install_chart_rbac(plane, "demo", "quartermaster-system", WORKDIR / "operator.kubeconfig")
        operator = start_operator(kubeconfig, WORKDIR / "operator.log",
                                  "--resync-seconds=15")
        processes.append(operator)
        say("operator running with the chart's ServiceAccount")
        plane.kubectl("apply", "-f", str(REPO / "examples" / "00-namespaces.yaml"))
        _wait_for_default_accounts(plane, ["team-a", "team-b", "team-c"])
        plane.kubectl("apply", "-f", str(REPO / "examples"))
    except (TestbedError, OSError) as error:
        for process in reversed(processes):
            process.stop()
        say(f"failed: {error}")
        return 1
    STATE.write_text(json.dumps({
        "pids": [p.popen.pid for p in processes],
        "kubeconfig": str(plane.admin_kubeconfig),
        "prometheus": prometheus.url,
    }))
    _wait_for_pool(plane, "general")
    print(plane.kubectl("get", "resourcepools", "-o", "wide").stdout)
    say("running. Try:")
    print(f"  export KUBECONFIG={plane.admin_kubeconfig}")
    print(f"  {bin_dir / 'kubectl'} get quartermaster -A")
    print(f"  {bin_dir / 'kubectl'} describe resourcepool general")
    print(f"  {bin_dir / 'kubectl'} -n team-a scale deployment web --replicas=8")
    print(f"  Prometheus: {prometheus.url}   operator log: {WORKDIR / 'operator.log'}")
    say("stop it with: make demo-down")
    return 0


def _wait_for_default_accounts(plane: ControlPlane, namespaces: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for namespace in namespaces:
        while plane.kubectl("-n", namespace, "get", "serviceaccount", "default", check=False).returncode:
            if time.monotonic() > deadline:
                raise TestbedError(f"no default ServiceAccount in {namespace}")
            time.sleep(0.5)


def _wait_for_pool(plane: ControlPlane, name: str, timeout: float = 90) -> None:
    """Until the pool is Ready and counts every example pod."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = plane.kubectl("get", "resourcepool", name, "-o", "json", check=False)
        status = json.loads(result.stdout or "{}").get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        if ready and status.get("members") == 6:
            return
        time.sleep(1)
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
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
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
