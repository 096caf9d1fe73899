"""ResourcePool pressure evictions end to end: a pool of fixed capacity driven to Emergency
by Deployments of low and normal priority, a PodDisruptionBudget guarding some of the low
ones, the session operator under the chart's RBAC evicting through the real Eviction API."""
import json
import time

import pytest
from kubernetes import client

from conftest import wait_for
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.providers.evictions import EVICTED, GONE, evict_pod
from quartermaster.testbed.traces import TRACES
from quartermaster.testbed.usage import UsageDrive

LOW_CLASS = "quartermaster-low"
# Requests of 4 cores in a pool of 4: Emergency (at 95 %) on requests. To get below
# Critical (85 %, 3.4 cores) at least 0.6 cores must go. The guarded pods are the low
# pods that use most, so they are chosen first, and their budget refuses.
WORKLOADS = {  # name: (replicas, cpu request, priorityClassName)
    "batch-free": (2, "500m", LOW_CLASS),
    "batch-guarded": (2, "600m", LOW_CLASS),
    "web": (2, "900m", None),  # no class: priority 0, normal
}
ACTIONS = {"evictAtEmergency": True, "cooldownSeconds": 10, "maxEvictionsPerRound": 3}


def deployment(name: str, replicas: int, cpu: str, priority_class) -> client.V1Deployment:
    labels = {"app": name}
    container = client.V1Container(name="app", image="registry.example/batch:1",
                                   resources=client.V1ResourceRequirements(requests={"cpu": cpu, "memory": "64Mi"}))
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container], priority_class_name=priority_class,
                                      node_selector={"pool": "e2e-evict"}))))


def pool(name: str, namespace: str, actions: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ResourcePool", "metadata": {"name": name},
            "spec": {"fixedCapacity": {"cpu": "4", "memory": "64Gi", "pods": "100"},
                     "workloads": {"namespaces": [namespace]}, "pressureActions": actions}}


@pytest.fixture(scope="module")
def evict_node(sim_cluster):
    sim_cluster.add_node("e2e-evict-node", "16", "32Gi", pods=50, labels={"pool": "e2e-evict"})


@pytest.fixture
def busy_namespace(control_plane, evict_node, operator_process, usage_exporter):
    """Makes a namespace holding WORKLOADS, their pods Running and their usage scraped, and
    a PodDisruptionBudget allowing no disruption of batch-guarded; deletes it afterwards."""
    made = []
    with control_plane.api_client() as api:
        core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)

        def make(namespace: str) -> client.CoreV1Api:
            control_plane.create_namespace(namespace, timeout=60)
            made.append(namespace)
            # the session operator applies its PriorityClasses when it starts
            wait_for(lambda: client.SchedulingV1Api(api).list_priority_class(
                field_selector=f"metadata.name={LOW_CLASS}").items, 60, f"PriorityClass {LOW_CLASS}")
            policy.create_namespaced_pod_disruption_budget(namespace, client.V1PodDisruptionBudget(
                metadata=client.V1ObjectMeta(name="batch-guarded"),
                spec=client.V1PodDisruptionBudgetSpec(min_available=2, selector=client.V1LabelSelector(
                    match_labels={"app": "batch-guarded"}))))
            for name, (replicas, cpu, priority_class) in WORKLOADS.items():
                apps.create_namespaced_deployment(namespace, deployment(name, replicas, cpu, priority_class))
                usage_exporter.add(UsageDrive(namespace, {"app": name}, TRACES / "ec2_cpu_utilization_5f5533.csv",
                                              peak_cores=0.1))
            wait_for(lambda: len(running(core, namespace)) == 6, 120, "six Running pods")
            # the disruption controller computes the budget's status; until then every
            # eviction is refused anyway
            wait_for(lambda: (policy.read_namespaced_pod_disruption_budget_status(
                "batch-guarded", namespace).status.current_healthy or 0) == 2, 60, "the budget's status")
            return core

        yield make
    for namespace in made:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false")


def running(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """Running pods not being deleted: name -> uid."""
    return {p.metadata.name: p.metadata.uid for p in core.list_namespaced_pod(namespace).items
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}


def pool_status(kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "resourcepool", name, "-o", "json").stdout).get("status") or {}


def pool_events(kubectl, name: str, reason: str) -> list[str]:
    listing = json.loads(kubectl("get", "events", "-A", "--field-selector",
                                 f"involvedObject.kind=ResourcePool,involvedObject.name={name},reason={reason}",
                                 "-o", "json").stdout)
    return [e["message"] for e in listing["items"]]


def condition(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def at_emergency_on_fresh_figures(kubectl, name: str):
    status = pool_status(kubectl, name)
    fresh = condition(status, "MetricsAvailable").get("reason") == "SamplesFresh"
    return fresh and status.get("pressure", {}).get("cpu") == "Emergency" and status


def test_at_emergency_only_low_priority_pods_are_evicted_never_past_their_budget(busy_namespace, kubectl):
    namespace = "e2e-evict-on"
    core = busy_namespace(namespace)
    before = running(core, namespace)
    protected = {n: uid for n, uid in before.items() if not n.startswith("batch-free-")}
    free = {n for n in before if n.startswith("batch-free-")}
    kubectl("apply", "-f", "-", input=json.dumps(pool("e2e-evict-on", namespace, ACTIONS)))
    try:
        wait_for(lambda: at_emergency_on_fresh_figures(kubectl, "e2e-evict-on"), 120,
                 "cpu at Emergency on fresh figures")
        # the first round takes the guarded pods (the larger of the low ones) and their
        # budget refuses; the next, after the cooldown, the free ones
        refused = wait_for(lambda: pool_events(kubectl, "e2e-evict-on", "EvictionRefused"), 90,
                           "an EvictionRefused Event")
        assert all(f"{namespace}/batch-guarded-" in m and "PodDisruptionBudget" in m for m in refused), refused
        evicted = wait_for(lambda: len(m := pool_events(kubectl, "e2e-evict-on", "PodEvicted")) >= 2 and m, 90,
                           "two PodEvicted Events")
        named = {m.split()[1].split("/")[1] for m in evicted}  # "evicted ns/pod (priority ...) for cpu ..."
        assert free <= named, (free, evicted)
        assert all(n.startswith("batch-free-") for n in named), evicted
        assert all("priority -100000, quartermaster-low" in m and "for cpu at Emergency" in m for m in evicted)
        # the evicted pods got an Event of their own
        pod_events = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector",
                                        "reason=PressureEviction", "-o", "json").stdout)["items"]
        assert {e["involvedObject"]["name"] for e in pod_events} & free
        status = pool_status(kubectl, "e2e-evict-on")
        assert {e["outcome"] for e in status["lastEvictions"]["pods"]} <= {"Evicted", "Refused", "Gone"}
        assert condition(status, "Evicting").get("status") == "True"
    finally:
        kubectl("delete", "resourcepool", "e2e-evict-on", "--ignore-not-found")
    # the normal pods and the guarded low ones are the very pods there were
    after = running(core, namespace)
    assert {n: after.get(n) for n in protected} == protected


def test_with_the_action_off_nothing_is_evicted(busy_namespace, kubectl):
    namespace = "e2e-evict-off"
    core = busy_namespace(namespace)
    before = running(core, namespace)
    kubectl("apply", "-f", "-", input=json.dumps(pool("e2e-evict-off", namespace,
                                                      {**ACTIONS, "evictAtEmergency": False})))
    try:
        wait_for(lambda: at_emergency_on_fresh_figures(kubectl, "e2e-evict-off"), 120,
                 "cpu at Emergency on fresh figures")
        time.sleep(30)  # three cooldowns: rounds would have come by now
        status = pool_status(kubectl, "e2e-evict-off")
        assert "lastEvictions" not in status and not condition(status, "Evicting")
        assert pool_events(kubectl, "e2e-evict-off", "PodEvicted") == []
        assert pool_events(kubectl, "e2e-evict-off", "EvictionRefused") == []
        assert running(core, namespace) == before
    finally:
        kubectl("delete", "resourcepool", "e2e-evict-off", "--ignore-not-found")


def test_an_eviction_takes_only_the_pod_decided_on(control_plane, evict_node):
    """A StatefulSet's replacement takes its predecessor's name: an eviction decided for the
    one must not take the other, so it names the uid."""
    namespace = "e2e-evict-uid"
    control_plane.create_namespace(namespace, timeout=60)
    try:
        with control_plane.api_client() as api:
            core = client.CoreV1Api(api)
            core.create_namespaced_pod(namespace, client.V1Pod(
                metadata=client.V1ObjectMeta(name="same-name"),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="registry.example/a:1")],
                                      node_selector={"pool": "e2e-evict"})))
            uid = core.read_namespaced_pod("same-name", namespace).metadata.uid
            assert evict_pod(core, namespace, "same-name", uid="an-earlier-pods-uid") == GONE
            assert core.read_namespaced_pod("same-name", namespace).metadata.deletion_timestamp is None
            assert evict_pod(core, namespace, "same-name", uid=uid) == EVICTED
            assert evict_pod(core, namespace, "no-such-pod") == GONE
    finally:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false")
