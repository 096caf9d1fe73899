"""Node-pool sizing end to end: a ScalingPolicy with `targetRef.kind: NodePool` names a
ResourcePool on the kwok provider's pool (conftest.PROVIDERS), and the session's operator,
under the chart's RBAC, grows the pool when a Deployment leaves pods Pending (kwok marks
the new Nodes Ready and runs the pods) and shrinks it after the scale-down cooldown,
draining through the Eviction API and stopping where a PodDisruptionBudget says so; and a
Predictive one grows its pool ahead of a forecast peak in Prometheus's history, before any
pod is Pending."""
import json
import time
from contextlib import contextmanager

import pytest
from kubernetes import client

from conftest import FORECAST_NODE_POOL, NODE_POOL, NODE_POOL_TAINT, SHAPED_NODE_POOL, app_workload, wait_for
from quartermaster.operator.conditions import from_rfc3339
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.providers.kwok import CAPACITY_TYPE_LABEL, DRAINING_ANNOTATION, INSTANCE_TYPE_LABEL, POOL_LABEL

NAMESPACE = "nodepool-e2e"
FORECAST_NAMESPACE = "nodepool-forecast"  # conftest.USAGE_DRIVES backfills StatefulSet steady's usage
POLICY = "pool-size"
COOLDOWN = 20  # seconds: the policy's scale-down stabilisation window


def manifest(kind: str, name: str, spec: dict, namespace: str | None = None, api: str = f"{GROUP}/{VERSION}") -> str:
    return json.dumps({"apiVersion": api, "kind": kind,
                       "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}, "spec": spec})


def deployment(replicas: int, pool: str = NODE_POOL, namespace: str = NAMESPACE) -> str:
    """Pods of 1.5 cores that only the pool's nodes take: two to an m5.xlarge (3.92 cores)."""
    return manifest("Deployment", "batch", {
        "replicas": replicas, "selector": {"matchLabels": {"app": "batch"}}, "template": {
            "metadata": {"labels": {"app": "batch"}},
            "spec": {"nodeSelector": {POOL_LABEL: pool},
                     "tolerations": [{**NODE_POOL_TAINT, "operator": "Equal"}],
                     "containers": [{"name": "app", "image": "fake", "resources": {"requests": {"cpu": "1500m"}}}]}}},
        namespace, "apps/v1")


def budget(min_available: int) -> str:
    return manifest("PodDisruptionBudget", "batch", {"minAvailable": min_available,
                                                     "selector": {"matchLabels": {"app": "batch"}}},
                    NAMESPACE, "policy/v1")


@contextmanager
def resource_pool(control_plane, kubectl, name: str, namespace: str, provider_node_pool: dict):
    """Namespace `namespace` and a ResourcePool `name` of its pods on `provider_node_pool`;
    afterwards the namespace's policies and workloads and the ResourcePool are deleted."""
    control_plane.create_namespace(namespace, timeout=60)
    kubectl("apply", "-f", "-", input=manifest("ResourcePool", name, {
        "providerNodePool": provider_node_pool, "workloads": {"namespaces": [namespace]}}))
    try:
        yield
    finally:
        kubectl("delete", "scalingpolicy,deployment,statefulset", "--all", "-n", namespace)
        kubectl("delete", "resourcepool", name, "--ignore-not-found")


@pytest.fixture(scope="module")
def api(sim_cluster, control_plane, operator_process, kubectl):
    with control_plane.api_client() as api:
        with resource_pool(control_plane, kubectl, NODE_POOL, NAMESPACE, {"provider": "kwok", "name": NODE_POOL}):
            yield api
        kubectl("delete", "namespace", NAMESPACE, FORECAST_NAMESPACE, "--wait=false", "--ignore-not-found")
        client.CoreV1Api(api).delete_collection_node(label_selector=f"{POOL_LABEL}={NODE_POOL}")


def pool_nodes(api, pool: str = NODE_POOL) -> list[client.V1Node]:
    return client.CoreV1Api(api).list_node(label_selector=f"{POOL_LABEL}={pool}").items


def node_ready(node: client.V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or ())


def batch_pods(api) -> list[client.V1Pod]:
    return [p for p in client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector="app=batch").items
            if p.metadata.deletion_timestamp is None]


def running(api, count: int) -> list[client.V1Pod]:
    pods = batch_pods(api)
    return pods if len(pods) == count and all(p.status.phase == "Running" for p in pods) else []


def policy_status(kubectl, namespace: str = NAMESPACE) -> dict:
    return json.loads(kubectl("get", "scalingpolicy", "-n", namespace, POLICY, "-o", "json").stdout).get("status") or {}


def condition(kubectl, type_: str, namespace: str = NAMESPACE) -> dict:
    return next((c for c in policy_status(kubectl, namespace).get("conditions") or [] if c["type"] == type_), {})


def ready_condition(kubectl, namespace: str = NAMESPACE) -> dict:
    return condition(kubectl, "Ready", namespace)


def test_the_pool_grows_for_pending_pods_and_shrinks_after_the_cooldown_within_the_budget(api, kubectl):
    kubectl("apply", "-f", "-", input=deployment(6))
    wait_for(lambda: len(batch_pods(api)) == 6 and all(p.status.phase == "Pending" for p in batch_pods(api)),
             60, "six pending pods: the pool has no nodes yet")
    kubectl("apply", "-f", "-", input=manifest("ScalingPolicy", POLICY, {
        "targetRef": {"kind": "NodePool", "name": NODE_POOL}, "signals": [{"type": "cpu"}],
        "minReplicas": 1, "maxReplicas": 6, "scaleDown": {"cooldownSeconds": COOLDOWN}}, NAMESPACE))

    # six 1.5-core pods, two to a node: three new Nodes, Ready, and every pod Running on them
    wait_for(lambda: running(api, 6), 120, "the six pods Running on the pool's new nodes")
    nodes = pool_nodes(api)
    assert len(nodes) == 3 and all(map(node_ready, nodes))
    assert {p.spec.node_name for p in batch_pods(api)} == {n.metadata.name for n in nodes}
    status = policy_status(kubectl)
    assert status["recommendation"]["replicas"] == 3
    assert status["lastAction"]["action"] == f"node pool {NODE_POOL} (kwok): 3 nodes"
    wait_for(lambda: ready_condition(kubectl).get("reason") == "Sized", 60, "the policy to say the pool is sized")

    # Three pods left, one on each node (the others marked cheaper to delete), which two
    # nodes hold; the budget lets none of them go.
    keep = {}
    for pod in sorted(batch_pods(api), key=lambda p: p.metadata.name):
        keep.setdefault(pod.spec.node_name, pod.metadata.name)
        cost = "100" if keep[pod.spec.node_name] == pod.metadata.name else "-100"
        client.CoreV1Api(api).patch_namespaced_pod(pod.metadata.name, NAMESPACE, {"metadata": {"annotations": {
            "controller.kubernetes.io/pod-deletion-cost": cost}}})
    kubectl("apply", "-f", "-", input=budget(3))
    scaled_down_at = time.time()
    kubectl("apply", "-f", "-", input=deployment(3))
    survivors = {p.metadata.name for p in wait_for(lambda: running(api, 3), 60, "three pods")}
    assert survivors == set(keep.values())
    shrunk_at = wait_for(lambda: ready_condition(kubectl).get("reason") == "DrainBlocked" and ready_condition(kubectl),
                         COOLDOWN + 60, "the drain to stop at the PodDisruptionBudget")
    assert "PodDisruptionBudget" in shrunk_at["message"] and shrunk_at["status"] == "True"
    draining = [n for n in pool_nodes(api) if (n.metadata.annotations or {}).get(DRAINING_ANNOTATION) == "true"]
    assert len(draining) == 1 and draining[0].spec.unschedulable
    status = policy_status(kubectl)
    assert status["recommendation"]["replicas"] == 2
    assert status["lastAction"]["action"] == f"node pool {NODE_POOL} (kwok): 2 nodes"
    # not before the cooldown, counted from the last cycle that wanted three nodes: at most one
    # resync (5 s) before the scale-down; lastAction's time is to the second
    assert from_rfc3339(status["lastAction"]["time"]) >= scaled_down_at + COOLDOWN - 6
    # nothing evicted past the budget while cycles (every 5 s) repeat the size
    time.sleep(15)
    assert {p.metadata.name for p in running(api, 3)} == survivors and len(pool_nodes(api)) == 3

    # Once the budget allows one disruption the drain goes on: the pod moves, the node goes.
    kubectl("apply", "-f", "-", input=budget(2))
    wait_for(lambda: len(pool_nodes(api)) == 2, 90, "the drained node deleted")
    wait_for(lambda: running(api, 3), 60, "the three pods Running on the two nodes left")
    assert {p.spec.node_name for p in batch_pods(api)} <= {n.metadata.name for n in pool_nodes(api)}
    wait_for(lambda: ready_condition(kubectl).get("reason") == "Sized", 60, "the pool sized at two nodes")



@pytest.fixture
def forecast_pool(api, control_plane, kubectl):
    with resource_pool(control_plane, kubectl, FORECAST_NODE_POOL, FORECAST_NAMESPACE,
                       {"provider": "kwok", "name": FORECAST_NODE_POOL}):
        yield
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{POOL_LABEL}={FORECAST_NODE_POOL}")


def test_a_predictive_policy_grows_the_pool_ahead_of_the_forecast_peak_without_pending_pods(api, kubectl,
                                                                                          forecast_pool):
    kubectl("apply", "-f", "-", input=manifest("ScalingPolicy", POLICY, {
        "targetRef": {"kind": "NodePool", "name": FORECAST_NODE_POOL}, "signals": [{"type": "cpu"}],
        "mode": "Predictive", "confidenceThreshold": 0.3, "forecast": {"horizonSeconds": 1800},
        "minReplicas": 1, "maxReplicas": 6}, FORECAST_NAMESPACE))
    wait_for(lambda: len(pool_nodes(api, FORECAST_NODE_POOL)) == 1, 60, "the pool's minimum of one node")
    # one pod of 100m, which one m5.large holds; its history says it uses about 3 cores
    container = client.V1Container(name="app", image="fake", resources=client.V1ResourceRequirements(
        requests={"cpu": "100m"}))
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": "steady"}),
        spec=client.V1PodSpec(containers=[container], node_selector={POOL_LABEL: FORECAST_NODE_POOL},
                              tolerations=[client.V1Toleration(**NODE_POOL_TAINT, operator="Equal")]))
    client.AppsV1Api(api).create_namespaced_stateful_set(FORECAST_NAMESPACE, app_workload("StatefulSet", "steady", 1,
                                                                                         template))
    pods = client.CoreV1Api(api)
    wait_for(lambda: [p for p in pods.list_namespaced_pod(FORECAST_NAMESPACE).items if p.status.phase == "Running"],
             60, "steady-0 Running on the pool's node")
    wait_for(lambda: len(pool_nodes(api, FORECAST_NODE_POOL)) >= 2, 120, "the pool to grow for the forecast peak")
    status = policy_status(kubectl, FORECAST_NAMESPACE)
    assert "cpu p90 forecast peaks at" in status["reasoning"] and "pending" not in status["reasoning"], status
    assert [p.status.phase for p in pods.list_namespaced_pod(FORECAST_NAMESPACE).items] == ["Running"]
    # the nodes the forecast asks for (the peak may rise as the forecast moves), all Ready
    wait_for(lambda: len(nodes := pool_nodes(api, FORECAST_NODE_POOL)) == policy_status(
        kubectl, FORECAST_NAMESPACE)["recommendation"]["replicas"] and all(map(node_ready, nodes)), 60,
        "the pool at the recommended size, its nodes Ready")


def events_of(api, namespace: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
            if e.involved_object.name == POLICY and e.reason == reason]


def test_provider_errors_are_ready_false_with_their_type_and_an_event(api, kubectl, forecast_pool):
    # the provider refuses a size outside its pool's own bounds (kwok's maxSize 6): for good,
    # so the size is asked once, and asked again only once the decision changes
    kubectl("apply", "-f", "-", input=manifest("ScalingPolicy", POLICY, {
        "targetRef": {"kind": "NodePool", "name": FORECAST_NODE_POOL}, "signals": [{"type": "cpu"}],
        "minReplicas": 7, "maxReplicas": 8}, FORECAST_NAMESPACE))
    refused = wait_for(lambda: (c := ready_condition(kubectl, FORECAST_NAMESPACE)).get("reason") == "Rejected" and c,
                       60, "Ready=False, Rejected")
    assert refused["status"] == "False" and "size 7 is outside [0, 6]" in refused["message"]
    assert "not tried again until the size changes" in refused["message"]
    warning = wait_for(lambda: events_of(api, FORECAST_NAMESPACE, "Rejected"), 30, "a Rejected Event")[0]
    assert warning.type == "Warning" and "size 7 is outside [0, 6]" in warning.message
    assert pool_nodes(api, FORECAST_NODE_POOL) == []
    kubectl("patch", "scalingpolicy", "-n", FORECAST_NAMESPACE, POLICY, "--type=merge",
            "-p", json.dumps({"spec": {"minReplicas": 2}}))
    wait_for(lambda: len(pool_nodes(api, FORECAST_NODE_POOL)) == 2, 60, "the pool at the new minimum")
    wait_for(lambda: ready_condition(kubectl, FORECAST_NAMESPACE).get("reason") == "Sized", 60, "Ready again")
    assert len(events_of(api, FORECAST_NAMESPACE, "Rejected")) == 1

    # a pool the provider does not have: describing it fails, every cycle, and nothing acts
    kubectl("apply", "-f", "-", input=manifest("ResourcePool", FORECAST_NODE_POOL, {
        "providerNodePool": {"provider": "kwok", "name": "not-configured"},
        "workloads": {"namespaces": [FORECAST_NAMESPACE]}}))
    missing = wait_for(lambda: (c := ready_condition(kubectl, FORECAST_NAMESPACE)).get("reason") == "NotFound" and c,
                       60, "Ready=False, NotFound")
    assert "kwok node pool 'not-configured' is not configured" in missing["message"]
    assert events_of(api, FORECAST_NAMESPACE, "NotFound")[0].type == "Warning"


SHAPED_NAMESPACE = "nodepool-shaped"
INTERRUPTION_TAINT = {"key": "aws-node-termination-handler/spot-itn", "value": "interrupted", "effect": "NoSchedule"}


@pytest.fixture
def shaped_pool(api, control_plane, kubectl):
    """A ResourcePool on SHAPED_NODE_POOL that allows three instance types, half its new
    nodes spot, and spot tried again a minute after it was interrupted."""
    with resource_pool(control_plane, kubectl, SHAPED_NODE_POOL, SHAPED_NAMESPACE, {
            "provider": "kwok", "name": SHAPED_NODE_POOL, "instanceTypes": ["m5.2xlarge", "c5.xlarge", "r5.xlarge"],
            "spotPercentage": 50, "spotRetrySeconds": 60}):
        yield
    kubectl("delete", "namespace", SHAPED_NAMESPACE, "--wait=false", "--ignore-not-found")
    client.CoreV1Api(api).delete_collection_node(label_selector=f"{POOL_LABEL}={SHAPED_NODE_POOL}")


def shapes(nodes: list[client.V1Node]) -> list[tuple[str, str]]:
    return sorted((n.metadata.labels[INSTANCE_TYPE_LABEL], n.metadata.labels[CAPACITY_TYPE_LABEL]) for n in nodes)


def test_the_cheapest_fitting_type_half_spot_and_on_demand_while_spot_is_interrupted(api, kubectl, shaped_pool):
    pods = client.CoreV1Api(api)

    def running_here(count: int) -> list[client.V1Pod]:
        live = [p for p in pods.list_namespaced_pod(SHAPED_NAMESPACE, label_selector="app=batch").items
                if p.metadata.deletion_timestamp is None]
        return live if len(live) == count and all(p.status.phase == "Running" for p in live) else []

    kubectl("apply", "-f", "-", input=deployment(4, SHAPED_NODE_POOL, SHAPED_NAMESPACE))
    kubectl("apply", "-f", "-", input=manifest("ScalingPolicy", POLICY, {
        "targetRef": {"kind": "NodePool", "name": SHAPED_NODE_POOL}, "signals": [{"type": "cpu"}],
        "minReplicas": 1, "maxReplicas": 8, "scaleDown": {"cooldownSeconds": 600}}, SHAPED_NAMESPACE))

    # 4 pods of 1.5 cores, half the nodes spot, 10 % left free: c5.xlarge, 2 nodes at
    # (0.066 + 0.170) / 2 = $0.118/h each, beats one m5.2xlarge at $0.2665/h and r5.xlarge
    wait_for(lambda: running_here(4), 120, "the four pods Running on the pool's new nodes")
    nodes = pool_nodes(api, SHAPED_NODE_POOL)
    assert shapes(nodes) == [("c5.xlarge", "on-demand"), ("c5.xlarge", "spot")] and all(map(node_ready, nodes))
    status = policy_status(kubectl, SHAPED_NAMESPACE)
    assert status["recommendation"] == {"replicas": 2, "instanceType": "c5.xlarge", "spotPercentage": 50,
                                        "pricePerHour": 0.236}
    assert status["reasoning"].startswith("cheapest fitting instance type c5.xlarge on kwok: 2 nodes × $0.118/h "
                                          "= $0.24/h"), status["reasoning"]
    assert "next m5.2xlarge on kwok at $0.27/h" in status["reasoning"]
    resized = events_of(api, SHAPED_NAMESPACE, "ResizedNodePool")
    assert [e.message for e in resized] == [f"node pool {SHAPED_NODE_POOL} (kwok): 2 nodes of c5.xlarge, 50% spot "
                                            "at $0.24/h"]
    assert condition(kubectl, "Spot", SHAPED_NAMESPACE)["reason"] == "SpotAtTarget"

    # The spot node gets an interruption notice (the AWS Node Termination Handler's taint):
    # the pool falls back to on-demand, and says so.
    spot_node = next(n for n in nodes if n.metadata.labels[CAPACITY_TYPE_LABEL] == "spot")
    pods.patch_node(spot_node.metadata.name, {"spec": {"taints": [NODE_POOL_TAINT, INTERRUPTION_TAINT]}})
    fallback = wait_for(lambda: (c := condition(kubectl, "Spot", SHAPED_NAMESPACE)).get("reason") == "SpotFallback"
                        and c, 60, "Spot=False, SpotFallback")
    assert fallback["status"] == "False"
    assert f"1 spot nodes interrupted ({spot_node.metadata.name}): on-demand only" in fallback["message"]
    warning = wait_for(lambda: events_of(api, SHAPED_NAMESPACE, "SpotFallback"), 30, "a SpotFallback Event")[0]
    assert warning.type == "Warning"
    assert policy_status(kubectl, SHAPED_NAMESPACE)["recommendation"]["spotPercentage"] == 0
    # the node is reclaimed with its pods: the pods it held come back Pending, and the node
    # the pool grows by for them is on-demand
    for pod in pods.list_namespaced_pod(SHAPED_NAMESPACE, field_selector=f"spec.nodeName={spot_node.metadata.name}").items:
        pods.delete_namespaced_pod(pod.metadata.name, SHAPED_NAMESPACE, grace_period_seconds=0)
    pods.delete_node(spot_node.metadata.name)
    reclaimed_at = time.time()
    wait_for(lambda: running_here(4) and len(pool_nodes(api, SHAPED_NODE_POOL)) == 2, 120,
             "the four pods Running again, on a new node")
    assert shapes(pool_nodes(api, SHAPED_NODE_POOL)) == [("c5.xlarge", "on-demand")] * 2

    # a minute after the last interruption, spot is asked for again
    again = wait_for(lambda: (c := condition(kubectl, "Spot", SHAPED_NAMESPACE)).get("reason") == "SpotAtTarget"
                     and c, 120, "Spot=True, SpotAtTarget again")
    assert time.time() >= reclaimed_at + 60 - 6  # the last cycle that saw the taint: at most one resync before
    assert "50% of new nodes spot again, after the fallback" in again["message"]
    assert events_of(api, SHAPED_NAMESPACE, "SpotAtTarget")
    assert policy_status(kubectl, SHAPED_NAMESPACE)["recommendation"]["spotPercentage"] == 50
