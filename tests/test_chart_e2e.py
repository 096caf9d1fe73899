"""`helm install` of the chart onto the test bed's apiserver, as a user installs it: every
object it renders is created, kwok schedules and runs the operator's pods on a fake node
(the image is never pulled), a values file that breaks values.schema.json is refused with
the field named, and `helm uninstall` removes the release but keeps the CRDs."""
import json
import subprocess

import pytest
import yaml

from quartermaster.testbed.cluster import KWOK_NODE_ANNOTATION
from quartermaster.testbed.operator import CHART, render_chart

RELEASE, NAMESPACE = "qm-install", "qm-install-system"
# Every optional object on: two replicas (and so a PodDisruptionBudget), a ServiceMonitor
# (its CRD a stand-in in testbed/thirdparty_crds), the Grafana dashboard.
VALUES = ("replicas=2", "metrics.serviceMonitor.enabled=true", "grafana.dashboard.enabled=true")


def helm(control_plane, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(control_plane.bin_dir / "helm"), *args, "--kubeconfig",
                           str(control_plane.admin_kubeconfig)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def release(control_plane, sim_cluster, crds_installed):
    """The chart installed with VALUES (Helm waits for the Deployment to be available);
    its rendered objects. Uninstalled by the last test, or here if that did not run."""
    sim_cluster.add_node("chart-install-1", "4", "8Gi", pods=20, labels={"pool": "chart-install"})
    sets = [arg for value in VALUES for arg in ("--set", value)]
    result = helm(control_plane, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
                  *sets, "--wait", "--timeout", "3m")
    # when the release never became ready (it happened once in a full run), what the pods and
    # the node were doing: Helm only says its deadline passed
    assert result.returncode == 0, result.stdout + result.stderr + "".join(
        control_plane.kubectl(*args, check=False).stdout for args in (
            ("get", "pods,replicasets", "-o", "wide", "-n", NAMESPACE),
            ("get", "events", "--sort-by=.lastTimestamp", "-n", NAMESPACE),
            ("get", "node", "chart-install-1", "-o", "wide")))
    yield render_chart(control_plane.bin_dir / "helm", RELEASE, NAMESPACE, *VALUES)
    helm(control_plane, "uninstall", RELEASE, "--namespace", NAMESPACE, "--ignore-not-found", "--wait")
    control_plane.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")


def test_install_creates_every_object_the_chart_renders(release, kubectl):
    kinds = {d["kind"] for d in release}
    assert {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
            "PodDisruptionBudget", "ServiceMonitor", "ConfigMap"} <= kinds, kinds
    found = json.loads(kubectl("get", "-f", "-", "-o", "json", input=yaml.safe_dump_all(release)).stdout)
    live = {(o["kind"], o["metadata"]["name"]) for o in found["items"]}
    assert live == {(d["kind"], d["metadata"]["name"]) for d in release}


def test_kwok_runs_the_operators_pods_on_a_fake_node(release, kubectl):
    pods = json.loads(kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}",
                              "-o", "json").stdout)["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running", pod["status"]
        node = json.loads(kubectl("get", "node", pod["spec"]["nodeName"], "-o", "json").stdout)
        assert KWOK_NODE_ANNOTATION.items() <= node["metadata"]["annotations"].items()


def test_a_values_file_that_breaks_the_schema_is_refused_naming_the_field(control_plane, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"metrics": {"serviceMonitor": {"enabled": True, "interval": "every minute"}}}))
    result = helm(control_plane, "install", "qm-refused", str(CHART), "--namespace", "qm-refused",
                  "--create-namespace", "--values", str(values))
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert "/metrics/serviceMonitor/interval" in result.stderr, result.stderr
    assert helm(control_plane, "status", "qm-refused", "--namespace", "qm-refused").returncode != 0, "not installed"


def test_uninstall_removes_the_release_and_keeps_the_crds(release, control_plane, kubectl):
    result = helm(control_plane, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    assert result.returncode == 0, result.stderr
    left = kubectl("get", "-f", "-", "--ignore-not-found", "-o", "name", input=yaml.safe_dump_all(release))
    assert not left.stdout.strip(), left.stdout
    crds = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in (CHART / "crds").glob("*.yaml")]
    assert len(crds) == 4
    kubectl("get", "crd", *crds)
