"""ResourcePool end to end: kwok nodes, a real Deployment, the operator under the chart's RBAC."""
import json
import re
import urllib.request

import pytest
from kubernetes import client

from conftest import wait_for
from quartermaster.operator.models import GROUP, VERSION

NAMESPACE = "e2e-pool"
NODES = {"e2e-node-1": ("4", "8Gi"), "e2e-node-2": ("4", "8Gi"), "e2e-node-3": ("8", "16Gi")}


def pool(name: str, node_labels: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": name},
        "spec": {"nodeSelector": {"matchLabels": node_labels},
                 "workloads": {"namespaces": [NAMESPACE], "selector": {"matchLabels": {"app": "e2e-web"}}}},
    }


def deployment(replicas: int) -> client.V1Deployment:
    labels = {"app": "e2e-web"}
    container = client.V1Container(name="app", image="registry.example/web:1", resources=client.V1ResourceRequirements(
        requests={"cpu": "500m", "memory": "256Mi"}))
    init = client.V1Container(name="init", image="registry.example/init:1", resources=client.V1ResourceRequirements(
        requests={"cpu": "100m", "memory": "64Mi"}))
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="e2e-web", namespace=NAMESPACE),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container], init_containers=[init],
                                      node_selector={"pool": "e2e"}))))


@pytest.fixture(scope="module")
def cluster_with_workload(sim_cluster, control_plane, operator_process):
    for name, (cpu, memory) in NODES.items():
        sim_cluster.add_node(name, cpu, memory, pods=20, labels={"pool": "e2e"})
    sim_cluster.add_node("e2e-other", "16", "32Gi", labels={"pool": "elsewhere"})
    control_plane.create_namespace(NAMESPACE, timeout=60)
    with control_plane.api_client() as api:
        client.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, deployment(3))
        yield api


@pytest.fixture(scope="module")
def e2e_pool(cluster_with_workload, kubectl) -> str:
    """The pool over the e2e nodes and the e2e-web pods, for every test that reads it."""
    kubectl("apply", "-f", "-", input=json.dumps(pool("e2e", {"pool": "e2e"})))
    return "e2e"


def pool_status(kubectl, name: str) -> dict:
    result = kubectl("get", "resourcepool", name, "-o", "json")
    return json.loads(result.stdout).get("status") or {}


def running_pods(api) -> int:
    pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="app=e2e-web").items
    return sum(1 for p in pods if p.status.phase == "Running")


def test_pods_run_on_the_fake_nodes(cluster_with_workload):
    wait_for(lambda: running_pods(cluster_with_workload) == 3, 120, "3 Running pods")
    pods = client.CoreV1Api(cluster_with_workload).list_namespaced_pod(NAMESPACE).items
    assert {p.spec.node_name for p in pods} <= set(NODES), "the scheduler honoured the nodeSelector"


def test_status_adds_up_nodes_and_pods_and_follows_scaling(cluster_with_workload, e2e_pool, kubectl):
    expected = {"cpu": "16", "memory": "32Gi", "nvidia.com/gpu": "0", "pods": "60"}
    status = wait_for(lambda: (s := pool_status(kubectl, "e2e")).get("capacity") == expected
                      and s.get("requested", {}).get("cpu") == "1500m" and s, 60, "capacity and requested")
    assert status["requested"] == {"cpu": "1500m", "memory": "768Mi", "nvidia.com/gpu": "0", "pods": "3"}
    assert status["free"]["cpu"] == "14500m"
    assert status["nodes"] == 3 and status["members"] == 3
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "Reconciled"
    assert status["observedGeneration"] == 1

    table = kubectl("get", "resourcepools", "e2e").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert dict(zip(header, row))["CPU"] == "16" and dict(zip(header, row))["CPU-REQ"] == "1500m"

    apps = client.AppsV1Api(cluster_with_workload)
    apps.patch_namespaced_deployment_scale("e2e-web", NAMESPACE, {"spec": {"replicas": 5}})
    try:
        status = wait_for(lambda: (s := pool_status(kubectl, "e2e"))["requested"]["cpu"] == "2500m" and s,
                          60, "requested to follow the scale-up")
        assert status["requested"]["memory"] == "1280Mi" and status["members"] == 5
    finally:  # the other tests expect three replicas, whatever order they run in
        apps.patch_namespaced_deployment_scale("e2e-web", NAMESPACE, {"spec": {"replicas": 3}})


def test_ready_event_is_recorded_once(e2e_pool, kubectl):
    wait_for(lambda: pool_status(kubectl, "e2e").get("nodes") == 3, 60, "the pool to be reconciled")

    def ready_events():
        listing = json.loads(kubectl("get", "events", "-A", "--field-selector",
                                     "involvedObject.kind=ResourcePool,involvedObject.name=e2e", "-o", "json").stdout)
        return [e for e in listing["items"] if e["reason"] == "Ready"]

    events = wait_for(ready_events, 30, "a Ready event")
    assert len(events) == 1 and "3 nodes" in events[0]["message"]
    described = kubectl("describe", "resourcepool", "e2e").stdout
    assert re.search(r"Normal\s+Ready\s+.*pool ready with 3 nodes", described), described


def test_pool_without_matching_nodes_says_why(cluster_with_workload, kubectl):
    kubectl("apply", "-f", "-", input=json.dumps(pool("e2e-empty", {"pool": "nowhere"})))
    status = wait_for(lambda: pool_status(kubectl, "e2e-empty").get("conditions") and pool_status(kubectl, "e2e-empty"),
                      60, "a condition on the empty pool")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoNodesSelected")
    described = wait_for(lambda: (out := kubectl("describe", "resourcepool", "e2e-empty").stdout)
                         and re.search(r"Warning\s+NoNodesSelected", out) and out, 30, "a NoNodesSelected event")
    assert "no schedulable node matches" in described


def test_spec_change_is_reconciled(cluster_with_workload, kubectl):
    kubectl("apply", "-f", "-", input=json.dumps(pool("e2e-retarget", {"pool": "nowhere"})))
    wait_for(lambda: pool_status(kubectl, "e2e-retarget").get("observedGeneration") == 1, 60, "the first status")
    kubectl("patch", "resourcepool", "e2e-retarget", "--type=merge",
            "-p", json.dumps({"spec": {"nodeSelector": {"matchLabels": {"pool": "e2e"}}}}))
    status = wait_for(lambda: (s := pool_status(kubectl, "e2e-retarget")).get("observedGeneration") == 2 and s,
                      60, "the new selector to be reconciled")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled") and status["nodes"] >= 3


def test_new_node_raises_capacity(e2e_pool, sim_cluster, kubectl):
    wait_for(lambda: pool_status(kubectl, "e2e").get("nodes") == 3, 60, "the pool to be reconciled")
    sim_cluster.add_node("e2e-node-4", "2", "4Gi", pods=10, labels={"pool": "e2e"}, gpu=2)
    try:
        status = wait_for(lambda: (s := pool_status(kubectl, "e2e"))["capacity"]["cpu"] == "18" and s, 60,
                          "capacity to include the new node")
        assert status["capacity"]["memory"] == "36Gi" and status["nodes"] == 4
        assert status["capacity"]["nvidia.com/gpu"] == "2" and status["free"]["nvidia.com/gpu"] == "2"
    finally:  # the other tests expect the pool's three nodes, whatever order they run in
        kubectl("delete", "node", "e2e-node-4", "--ignore-not-found")


def test_operator_answers_its_liveness_probe(operator_process, operator_liveness_port):
    def healthy():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{operator_liveness_port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
    assert wait_for(healthy, 30, "the operator's /healthz")
