"""`quartermaster status`: the tables it prints from our objects' status, and the command
against the real apiserver (the objects other tests and the operator made, read with the
admin kubeconfig), with a clear message when there is no cluster."""
import json
import subprocess
import sys

from conftest import wait_for
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.operator.status_command import render, tables


def test_each_kind_gets_its_table_with_the_figures_a_person_looks_for():
    pool = {"metadata": {"name": "general"}, "status": {
        "capacity": {"cpu": "16"}, "requested": {"cpu": "4"}, "used": {"cpu": "2500m"}, "forecast": {"cpu": "3"},
        "pressure": {"cpu": "Normal", "memory": "Warning"},
        "capacityPlan": [{"resource": "cpu", "daysLeft": 40.2}, {"resource": "memory", "daysLeft": 12.6}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]}}
    policy = {"metadata": {"name": "web", "namespace": "shop"},
              "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "mode": "Predictive"},
              "status": {"currentReplicas": 3, "recommendation": {"replicas": 5}, "confidence": 0.81}}
    plan = {"metadata": {"name": "move"}, "spec": {"poolRef": {"name": "general"}, "approval": "Manual"},
            "status": {"phase": "Planned", "swapCount": 4, "risk": 0.12, "planId": "7e04271f9f"}}
    quota = {"metadata": {"name": "team-a"}, "spec": {"hard": {"cpu": "8"}, "budget": {"daily": 40}},
             "status": {"usage": {"cpu": "1500m"}, "cost": {"today": 12.345, "thisMonth": 180.5, "currency": "USD"}}}
    shown = tables({"resourcepools": [pool], "scalingpolicies": [policy], "swapplans": [plan], "quotas": [quota]})
    assert shown["resourcepools"][1] == ["general", "16", "4", "2500m", "3", "cpu Normal, memory Warning", "13",
                                         "True/Reconciled"], "days left: the soonest resource's"
    assert shown["scalingpolicies"][1][3] == "3 → 5" and shown["scalingpolicies"][1][4] == "0.81"
    assert shown["swapplans"][1][3:7] == ["Planned", "4", "0.12", "7e04271f9f"]
    assert shown["quotas"][1][1:4] == ["1500m/8", "12.35/40 USD", "180.50/- USD"], "used/limit, spend/budget"
    assert len(tables({})["quotas"]) == 1, "a kind with no objects shows its header"
    lines = render(shown["resourcepools"]).splitlines()
    assert lines[0].index("CPU") == lines[1].index("16"), "columns line up"


def test_the_command_reads_the_cluster_as_kubectl_does(control_plane, operator_process, kubectl):
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": "status-cli"},
        "spec": {"fixedCapacity": {"cpu": "7"}, "workloads": {"namespaces": ["status-cli"]}}}))

    def shown():
        result = subprocess.run([sys.executable, "-m", "quartermaster.operator.cli", "status", "-A",
                                 f"--kubeconfig={control_plane.admin_kubeconfig}"], capture_output=True, text=True)
        line = next((l for l in result.stdout.splitlines() if l.startswith("status-cli ")), "")
        return result.returncode == 0 and " 7 " in f" {line} " and line

    assert wait_for(shown, 60, "the pool in quartermaster status").split()[1] == "7"
    as_json = subprocess.run([sys.executable, "-m", "quartermaster.operator.cli", "status", "-o", "json",
                              f"--kubeconfig={control_plane.admin_kubeconfig}"], capture_output=True, text=True)
    assert "status-cli" in [p["metadata"]["name"] for p in json.loads(as_json.stdout)["resourcepools"]]


def test_no_cluster_is_a_clear_message_not_a_traceback(tmp_path):
    missing = tmp_path / "no-kubeconfig"
    result = subprocess.run([sys.executable, "-m", "quartermaster.operator.cli", "status", f"--kubeconfig={missing}"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "no cluster to read" in result.stderr and "Traceback" not in result.stderr
