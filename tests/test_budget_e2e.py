"""A Quota's `budget.action: Block` end to end: StatefulSet `spender` (a week of history
and its request backfilled, conftest.USAGE_DRIVES, about 3 cores on a 200m request) under
a Quota with a tiny daily budget; a Reactive policy that wants 4 replicas of it holds its
HPA at the one replica running while the Quota is over its budget, says so in
ScalingAllowed and an Event, and scales up once the budget is raised."""
import json
import time

import pytest
from kubernetes import client

from conftest import app_workload, wait_for
from quartermaster.operator.models import GROUP, VERSION

NAMESPACE = "e2e-budget"
QUOTA = "budget-block"


def apply_quota(kubectl, daily: float) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": QUOTA},
        "spec": {"scope": {"namespaces": [NAMESPACE]}, "budget": {"daily": daily, "action": "Block"}}}))


def conditions(kubectl, *resource: str) -> dict[str, dict]:
    body = json.loads(kubectl("get", *resource, "-o", "json").stdout)
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


@pytest.fixture(scope="module")
def spender(sim_cluster, control_plane, operator_process, prometheus, kubectl):
    control_plane.create_namespace(NAMESPACE, timeout=60)
    sim_cluster.add_node("e2e-budget-1", "16", "64Gi", pods=20, labels={"pool": "budget"})
    container = client.V1Container(name="app", image="registry.example/spender:1",
                                   resources=client.V1ResourceRequirements(requests={"cpu": "200m"}))
    template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "spender"}),
                                        spec=client.V1PodSpec(containers=[container], node_selector={"pool": "budget"}))
    with control_plane.api_client() as api:
        client.AppsV1Api(api).create_namespaced_stateful_set(NAMESPACE, app_workload("StatefulSet", "spender", 1,
                                                                                     template))
        apply_quota(kubectl, 0.0001)
        wait_for(lambda: conditions(kubectl, "quotas.quartermaster.dev", QUOTA).get("BudgetExceeded", {}).get(
            "status") == "True", 120, "the Quota over its daily budget")
        yield api


def test_a_quota_over_its_budget_with_block_stops_a_policys_scale_up_until_the_budget_allows(spender, kubectl):
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ScalingPolicy", "metadata": {"name": "spender",
                                                                                 "namespace": NAMESPACE},
        "spec": {"targetRef": {"kind": "StatefulSet", "name": "spender"}, "mode": "Reactive",
                 "signals": [{"type": "cpu", "target": "10m"}], "minReplicas": 1, "maxReplicas": 4,
                 "scaleUp": {"step": 4, "cooldownSeconds": 0}}}))
    policy = ("scalingpolicy", "-n", NAMESPACE, "spender")
    blocked = wait_for(lambda: conditions(kubectl, *policy).get("ScalingAllowed"), 120, "ScalingAllowed")
    assert blocked["status"] == "False" and blocked["reason"] == "BudgetExceeded"
    assert f"Quota {QUOTA}" in blocked["message"] and "daily budget" in blocked["message"]
    hpas, apps = client.AutoscalingV2Api(spender), client.AppsV1Api(spender)

    def bounds():
        hpa = hpas.read_namespaced_horizontal_pod_autoscaler("spender", NAMESPACE)
        return hpa.spec.min_replicas, hpa.spec.max_replicas
    wait_for(lambda: bounds() == (1, 1), 60, "the HPA held at the one replica running")
    status = json.loads(kubectl("get", *policy, "-o", "json").stdout)["status"]
    assert status["recommendation"]["replicas"] == 4, "it would scale up: about 3 cores at 10m a replica"
    time.sleep(15)  # three cycles: neither the policy nor the HPA controller adds a replica
    assert bounds() == (1, 1)
    assert apps.read_namespaced_stateful_set("spender", NAMESPACE).spec.replicas == 1
    events = json.loads(kubectl("get", "events", "-n", NAMESPACE, "--field-selector",
                                "involvedObject.name=spender,reason=BudgetExceeded", "-o", "json").stdout)["items"]
    assert any(e["type"] == "Warning" and e["involvedObject"]["kind"] == "ScalingPolicy" for e in events)

    apply_quota(kubectl, 1_000_000)
    wait_for(lambda: conditions(kubectl, *policy).get("ScalingAllowed", {}).get("reason") == "WithinBudget", 60,
             "ScalingAllowed=True once the budget is raised")
    wait_for(lambda: bounds() == (4, 4), 60, "the HPA's floor raised to the recommendation")
    wait_for(lambda: apps.read_namespaced_stateful_set("spender", NAMESPACE).spec.replicas == 4, 120,
             "the HPA controller to scale the StatefulSet to 4")
