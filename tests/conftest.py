"""Session fixtures for the real test bed: control plane, simulated cluster, Prometheus,
and the operator itself running with only the chart's RBAC."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from infra.cluster import ControlPlane, SimulatedCluster
from infra.processes import REPO, Process, TestbedError, testbed_binaries
from infra.prometheus import Prometheus
from infra.traces import bundled_workloads

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
OPERATOR_NAMESPACE = "quartermaster-system"
RELEASE = "qm"


def unavailable(reason: str):
    """In CI a test bed that cannot be built or started fails the run; elsewhere it skips."""
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """Poll until `predicate()` returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def testbed_bin() -> Path:
    try:
        return testbed_binaries()
    except TestbedError as error:
        unavailable(str(error))


@pytest.fixture(scope="session")
def control_plane(testbed_bin, tmp_path_factory):
    plane = ControlPlane(testbed_bin, tmp_path_factory.mktemp("control-plane"))
    try:
        plane.start()
    except TestbedError as error:
        plane.stop()
        unavailable(str(error))
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kubectl(control_plane):
    def run(*args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None):
        result = subprocess.run(
            [str(control_plane.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig or control_plane.admin_kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result
    return run


@pytest.fixture(scope="session")
def crds_installed(kubectl):
    kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s",
            "crd/resourcepools.quartermaster.dev", "crd/quotas.quartermaster.dev",
            "crd/scalingpolicies.quartermaster.dev", "crd/swapplans.quartermaster.dev")


@pytest.fixture(scope="session")
def sim_cluster(control_plane):
    cluster = SimulatedCluster(control_plane)
    try:
        cluster.start()
    except TestbedError as error:
        cluster.stop()
        unavailable(str(error))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def helm_template(testbed_bin):
    def render(*values: str) -> list[dict]:
        args = [str(testbed_bin / "helm"), "template", RELEASE, str(REPO / "charts" / "quartermaster"),
                "--namespace", OPERATOR_NAMESPACE]
        for value in values:
            args += ["--set", value]
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return render


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane, kubectl, helm_template, tmp_path_factory) -> Path:
    """A kubeconfig for the chart's ServiceAccount, with the chart's RBAC applied (and nothing more)."""
    kubectl("create", "namespace", OPERATOR_NAMESPACE)
    rbac = [doc for doc in helm_template() if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    account = next(doc for doc in rbac if doc["kind"] == "ServiceAccount")["metadata"]["name"]
    path = tmp_path_factory.mktemp("operator") / "operator.kubeconfig"
    return control_plane.kubeconfig_for_service_account(OPERATOR_NAMESPACE, account, path)


@pytest.fixture(scope="session")
def operator_process(crds_installed, sim_cluster, operator_kubeconfig, tmp_path_factory):
    """`quartermaster run` as its own process, with only the chart's permissions."""
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    process = Process("quartermaster", [
        sys.executable, "-m", "quartermaster.operator.cli", "run",
        f"--kubeconfig={operator_kubeconfig}", "--resync-seconds=5", "--verbose",
    ], log).start()
    time.sleep(1)
    if not process.running():
        pytest.fail(f"operator exited at start:\n{process.log_tail()}")
    yield process
    process.stop()
    forbidden = [line for line in log.read_text(errors="replace").splitlines() if "403" in line or "forbidden" in line.lower()]
    assert not forbidden, "the operator hit RBAC denials with the chart's role:\n" + "\n".join(forbidden[:20])


@pytest.fixture(scope="session")
def prometheus(testbed_bin, tmp_path_factory):
    workloads = bundled_workloads(end=time.time() - 60)
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), workloads)
    try:
        server.start()
    except TestbedError as error:
        server.stop()
        unavailable(str(error))
    yield server
    server.stop()
