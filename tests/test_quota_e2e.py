"""Quota end to end: a Quota over two namespaces (one listed, one by its team label) owns a
ResourceQuota and a LimitRange in each; the real apiserver fills in the defaults and
refuses a pod over the namespace's part of the total; the split follows the pods'
requests; the garbage collector in kube-controller-manager deletes the objects with the
Quota, and the operator those in a namespace that leaves the scope (its scope.user label
changed; the namespace's own are kept); a lender's active reservation is not lent. A Deployment whose pods are over the namespace's cpu leaves them refused (its
ReplicaSet's FailedCreate); `concurrentWorkloads` and `storage` refuse the objects themselves."""
import json
from datetime import datetime, timedelta, timezone

import pytest
from kubernetes import client

from conftest import app_workload, wait_for
from quartermaster.operator.conditions import from_rfc3339
from quartermaster.operator.models import GROUP, VERSION
from quartermaster.operator.quantities import to_float

LISTED, LABELLED = "quota-a", "quota-b"
QUOTA = "team-blue"
OBJECT = f"quartermaster-{QUOTA}"
HARD = {"cpu": "2", "memory": "4Gi", "pods": 10}


def quota_manifest(name: str = QUOTA, spec: dict | None = None) -> str:
    """A Quota `name` with `spec`; by default team-blue's: two namespaces, one listed, one labelled."""
    spec = spec or {"scope": {"namespaces": [LISTED], "team": {"key": "team", "value": "blue"}}, "hard": HARD,
                    "defaults": {"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}}}
    return json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Quota", "metadata": {"name": name}, "spec": spec})


def pod(name: str, cpu: str | None) -> client.V1Pod:
    resources = client.V1ResourceRequirements(requests={"cpu": cpu, "memory": "64Mi"}) if cpu else None
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(
        containers=[client.V1Container(name="app", image="registry.example/app:1", resources=resources)],
        node_selector={"pool": "quota"}))


@pytest.fixture(scope="module")
def core(sim_cluster, control_plane, operator_process):
    sim_cluster.add_node("e2e-quota-1", "16", "64Gi", pods=40, labels={"pool": "quota"})
    control_plane.create_namespace(LISTED, timeout=60)
    control_plane.create_namespace(LABELLED, labels={"team": "blue"}, timeout=60)
    with control_plane.api_client() as api:
        yield client.CoreV1Api(api)


def hard_cpu(core, namespace: str, quota: str = QUOTA) -> float:
    """The cpu limit of `quota`'s ResourceQuota in `namespace`; -1 while there is none."""
    found = core.list_namespaced_resource_quota(namespace, label_selector=f"quartermaster.dev/quota={quota}").items
    return to_float(found[0].spec.hard["requests.cpu"]) if found else -1.0


def status_of(kubectl, quota: str) -> dict:
    return json.loads(kubectl("get", "quotas.quartermaster.dev", quota, "-o", "json").stdout).get("status") or {}


def test_a_quota_owns_resource_quotas_whose_limits_sum_to_its_total(core, kubectl):
    kubectl("apply", "-f", "-", input=quota_manifest())
    def owned():
        found = [q for ns in (LISTED, LABELLED) for q in core.list_namespaced_resource_quota(
            ns, label_selector=f"quartermaster.dev/quota={QUOTA}").items]
        return len(found) == 2 and found

    quotas = wait_for(owned, 90, "a ResourceQuota of the Quota in both namespaces")
    for resource, key in (("cpu", "requests.cpu"), ("memory", "requests.memory"), ("pods", "pods")):
        assert sum(to_float(q.spec.hard[key]) for q in quotas) == to_float(HARD[resource])
    for q in quotas:
        assert q.metadata.labels["app.kubernetes.io/managed-by"] == "quartermaster"
        assert [(o.kind, o.name) for o in q.metadata.owner_references] == [("Quota", QUOTA)]
    limits = core.read_namespaced_limit_range(OBJECT, LABELLED).spec.limits[0]
    assert limits.default_request == {"cpu": "100m", "memory": "128Mi"} and limits.default == {"memory": "128Mi"}


def test_the_apiserver_refuses_a_pod_over_the_split_and_the_split_follows_use(core, kubectl):
    kubectl("apply", "-f", "-", input=quota_manifest())
    wait_for(lambda: hard_cpu(core, LISTED) == 1.0, 90, "an even split of 2 cores")
    core.create_namespaced_pod(LISTED, pod("uses-half", "500m"))
    # the listed namespace uses 500m: it gets that plus half of the 1.5 cores left
    # both parts: the two ResourceQuotas are written one after the other
    wait_for(lambda: (hard_cpu(core, LISTED), hard_cpu(core, LABELLED)) == (1.25, 0.75), 60,
             "quota-a's part raised to 1250m and quota-b's lowered to 750m")
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(LISTED, pod("too-big", "1"))
    assert refused.value.status == 403 and "exceeded quota" in refused.value.body
    # a container without requests gets the LimitRange's defaults (and fits)
    core.create_namespaced_pod(LABELLED, pod("defaulted", None))
    defaulted = core.read_namespaced_pod("defaulted", LABELLED).spec.containers[0].resources
    assert defaulted.requests == {"cpu": "100m", "memory": "128Mi"} and defaulted.limits == {"memory": "128Mi"}

    final = wait_for(lambda: (s := status_of(kubectl, QUOTA)).get("usage", {}).get("cpu") == "600m" and s, 60,
                     "status usage of 600m")
    assert final["remaining"]["cpu"] == "1400m"
    parts = {p["namespace"]: p for p in final["split"]}
    assert parts[LISTED]["used"]["cpu"] == "500m" and parts[LABELLED]["used"]["cpu"] == "100m"
    assert sum(to_float(p["hard"]["cpu"]) for p in parts.values()) == 2.0
    assert {(o["kind"], o["namespace"]) for o in final["ownedObjects"]} == {
        (kind, ns) for kind in ("ResourceQuota", "LimitRange") for ns in (LISTED, LABELLED)}
    conditions = {c["type"]: c for c in final["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Exceeded"]["status"] == "False"
    assert final["observedGeneration"] >= 1


def test_deleting_the_quota_deletes_its_objects(core, kubectl):
    kubectl("apply", "-f", "-", input=quota_manifest())
    wait_for(lambda: core.list_namespaced_resource_quota(LABELLED).items, 90, "the ResourceQuota")
    kubectl("delete", "quotas.quartermaster.dev", QUOTA)
    wait_for(lambda: not [q for ns in (LISTED, LABELLED) for q in core.list_namespaced_resource_quota(ns).items]
             and not core.list_namespaced_limit_range(LISTED).items, 90, "the garbage collector to delete them")


WORKLOADS_NS, WORKLOADS_QUOTA = "quota-c", "team-green"


def workloads_quota_manifest() -> str:
    return quota_manifest(WORKLOADS_QUOTA, {"scope": {"namespaces": [WORKLOADS_NS]},
                                            "hard": {"cpu": "1", "concurrentWorkloads": 2, "storage": "1Gi"}})


def deployment(name: str, cpu: str, replicas: int = 1):
    template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": name}), spec=pod(name, cpu).spec)
    return app_workload("Deployment", name, replicas, template)


def admitted(create) -> bool:
    try:
        create()
    except client.ApiException as refused:
        if refused.status != 403:
            raise
        return False
    return True


def test_pods_over_the_limit_are_refused_and_workloads_and_storage_are_counted(core, kubectl, control_plane):
    control_plane.create_namespace(WORKLOADS_NS, timeout=60)
    kubectl("apply", "-f", "-", input=workloads_quota_manifest())
    name = f"quartermaster-{WORKLOADS_QUOTA}"

    def hard():
        """What the apiserver enforces: the quota controller copies spec.hard to status.hard."""
        found = core.list_namespaced_resource_quota(WORKLOADS_NS, field_selector=f"metadata.name={name}").items
        return (found[0].status.hard or {}) if found and found[0].status else {}

    # 2 workloads over 3 kinds: at most 2 objects in all, however they are made
    wait_for(lambda: hard().get("count/deployments.apps") == "1", 90, "the ResourceQuota with the workload counts")
    assert (hard()["count/statefulsets.apps"], hard()["count/jobs.batch"], hard()["requests.storage"]) == (
        "1", "0", "1Gi")
    with control_plane.api_client() as api:
        apps = client.AppsV1Api(api)
        apps.create_namespaced_deployment(WORKLOADS_NS, deployment("too-big", "2"))

        def refused():
            events = core.list_namespaced_event(WORKLOADS_NS, field_selector="involvedObject.kind=ReplicaSet").items
            return [e for e in events if e.reason == "FailedCreate"]

        event = wait_for(refused, 60, "the ReplicaSet's FailedCreate event")[0]
        assert "exceeded quota" in event.message and "requests.cpu" in event.message
        assert event.involved_object.name.startswith("too-big-")
        # the first Deployment used a kind's share; the next cycle gives it the spare one
        wait_for(lambda: hard().get("count/deployments.apps") == "2", 60, "room for a second Deployment")
        # the apiserver's quota admission reads ResourceQuotas from its cache, a moment behind
        # the status read here
        second = deployment("second", "100m")
        wait_for(lambda: admitted(lambda: apps.create_namespaced_deployment(WORKLOADS_NS, second)), 30,
                 "the second Deployment admitted")
        wait_for(lambda: hard().get("count/statefulsets.apps") == "0", 60, "no room left for a StatefulSet")
        for create in (lambda: apps.create_namespaced_deployment(WORKLOADS_NS, deployment("third", "100m")),
                       lambda: apps.create_namespaced_stateful_set(WORKLOADS_NS, app_workload(
                           "StatefulSet", "third", 1, deployment("third", "100m").spec.template))):
            with pytest.raises(client.ApiException) as over:
                create()
            assert over.value.status == 403 and "exceeded quota" in over.value.body
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"), spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "2Gi"})))
    with pytest.raises(client.ApiException) as over:
        core.create_namespaced_persistent_volume_claim(WORKLOADS_NS, claim)
    assert over.value.status == 403 and "requests.storage" in over.value.body
    usage = wait_for(lambda: (u := (status_of(kubectl, WORKLOADS_QUOTA).get("usage") or {})).get(
        "concurrentWorkloads") == 2 and u, 60, "status usage of 2 workloads")
    assert usage["storage"] == "0"


def test_the_operator_keeps_a_priority_class_per_level_that_pods_take_their_priority_from(core, control_plane):
    with control_plane.api_client() as api:
        scheduling = client.SchedulingV1Api(api)

        def classes():
            return {c.metadata.name: c for c in scheduling.list_priority_class(
                label_selector="app.kubernetes.io/managed-by=quartermaster").items}

        made = wait_for(lambda: len(found := classes()) == 4 and found, 90, "the four PriorityClasses")
        assert {name: c.value for name, c in made.items()} == {
            "quartermaster-critical": 1_000_000, "quartermaster-high": 100_000, "quartermaster-normal": 0,
            "quartermaster-low": -100_000}
        scheduling.patch_priority_class("quartermaster-low", {"description": "edited by hand"})
        wait_for(lambda: classes()["quartermaster-low"].description.startswith("Quartermaster's low"), 60,
                 "the hand edit put back")
    control_plane.create_namespace("quota-priority", timeout=60)
    high = pod("urgent", "100m")
    high.spec.priority_class_name = "quartermaster-high"
    assert core.create_namespaced_pod("quota-priority", high).spec.priority == 100_000


def test_a_borrowing_quota_grows_while_the_lender_idles_and_shrinks_when_its_demand_returns(core, kubectl,
                                                                                            control_plane):
    lending, borrowing = "quota-lend", "quota-borrow"
    for namespace in (lending, borrowing):
        control_plane.create_namespace(namespace, timeout=60)
    for name, namespace, spec in (("lender", lending, {"hard": {"cpu": "2"}}),
                                  ("borrower", borrowing, {"hard": {"cpu": "1"}, "borrowIdle": True,
                                                           "borrowingLimit": {"cpu": "1"}})):
        kubectl("apply", "-f", "-", input=quota_manifest(name, {"scope": {"namespaces": [namespace]}, **spec}))

    def limits(borrower: float, lender: float) -> bool:
        return hard_cpu(core, borrowing, "borrower") == borrower and hard_cpu(core, lending, "lender") == lender

    def pods_of(namespace: str) -> int:
        return len(core.list_namespaced_pod(namespace).items)

    wait_for(lambda: limits(1.0, 2.0), 90, "both Quotas' own limits")
    with control_plane.api_client() as api:
        apps = client.AppsV1Api(api)
        # 3 x 500m against a limit of 1 core: the third pod is refused until the borrower
        # borrows half a core of the lender's idle 2
        apps.create_namespaced_deployment(borrowing, deployment("web", "500m", replicas=3))
        wait_for(lambda: limits(1.5, 1.5), 90, "half a core lent")
        wait_for(lambda: pods_of(borrowing) == 3, 120, "the third pod admitted on the loan")
        grown = status_of(kubectl, "borrower")
        assert grown["borrowed"] == {"cpu": "500m"} and status_of(kubectl, "lender")["lent"] == {"cpu": "500m"}
        assert {c["type"]: c["reason"] for c in grown["conditions"]}["Borrowing"] == "BorrowingIdle"
        # the lender's demand returns: 4 x 500m, its whole limit; the loan ends
        apps.create_namespaced_deployment(lending, deployment("batch", "500m", replicas=4))
        wait_for(lambda: limits(1.0, 2.0), 90, "the loan given back")
        wait_for(lambda: pods_of(lending) == 4, 120, "the lender's fourth pod admitted")
    shrunk = wait_for(lambda: "borrowed" not in (found := status_of(kubectl, "borrower")) and found, 30,
                      "status borrowed removed")
    assert {c["type"]: c["reason"] for c in shrunk["conditions"]}["Borrowing"] == "NothingIdle"


def test_a_namespace_that_leaves_the_scope_loses_the_quota_s_objects_and_keeps_its_own(core, kubectl, control_plane):
    # one namespace listed, one labelled for the Quota's user, who then hands it on
    staying, leaving, name = "quota-stay", "quota-leave", "user-olive"
    control_plane.create_namespace(staying, timeout=60)
    control_plane.create_namespace(leaving, labels={"quartermaster.dev/user": "olive"}, timeout=60)
    # the namespace's own ResourceQuota, which no Quota owns
    core.create_namespaced_resource_quota(leaving, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="own"), spec=client.V1ResourceQuotaSpec(hard={"pods": "50"})))
    kubectl("apply", "-f", "-", input=quota_manifest(name, {
        "scope": {"namespaces": [staying], "user": "olive"},
        # lending nothing, its limit is its own: what others borrow does not move the split
        "hard": {"cpu": "2"}, "lendingLimit": {"cpu": 0}, "defaults": {"requests": {"cpu": "100m"}}}))
    owned = f"quartermaster-{name}"

    def objects(namespace: str) -> list[str]:
        return sorted([f"ResourceQuota/{q.metadata.name}" for q in core.list_namespaced_resource_quota(namespace).items]
                      + [f"LimitRange/{r.metadata.name}" for r in core.list_namespaced_limit_range(namespace).items])

    wait_for(lambda: objects(leaving) == [f"LimitRange/{owned}", "ResourceQuota/own", f"ResourceQuota/{owned}"], 90,
             "the Quota's objects beside the namespace's own")
    core.patch_namespace(leaving, {"metadata": {"labels": {"quartermaster.dev/user": "someone-else"}}})
    wait_for(lambda: objects(leaving) == ["ResourceQuota/own"], 90, "the Quota's objects deleted, its own kept")
    assert hard_cpu(core, staying, name) == 2.0, \
        "the namespace left in the scope holds the whole total"
    status = wait_for(lambda: (s := status_of(kubectl, name)) and {
        o["namespace"] for o in s.get("ownedObjects", [])} == {staying} and s, 30, "status ownedObjects of the namespace left")
    assert "deleted LimitRange quota-leave/" in status["lastAction"]["action"]


def test_a_lender_s_active_reservation_is_not_lent(core, kubectl, control_plane):
    reserving, plain, borrowing = "quota-reserving", "quota-plain", "quota-borrowing"
    for namespace in (reserving, plain, borrowing):
        control_plane.create_namespace(namespace, timeout=60)
    now = datetime.now(timezone.utc)
    # a window around now (every day; crossing midnight when now is near it)
    window = {"start": (now - timedelta(hours=1)).strftime("%H:%M"),
              "end": (now + timedelta(hours=2)).strftime("%H:%M")}
    for name, namespace, spec in (
            ("reserving", reserving, {"hard": {"cpu": "2"}, "reservations": [
                {"name": "batch", "resources": {"cpu": "2"}, "schedule": window}]}),
            ("plain", plain, {"hard": {"cpu": "2"}}),
            ("borrowing", borrowing, {"hard": {"cpu": "500m"}, "borrowIdle": True})):
        kubectl("apply", "-f", "-", input=quota_manifest(name, {"scope": {"namespaces": [namespace]}, **spec}))
    try:
        with control_plane.api_client() as api:
            client.AppsV1Api(api).create_namespaced_deployment(borrowing, deployment("web", "500m", replicas=3))
        # the borrower borrows idle capacity, the plain Quota lends some, the reserving one none
        wait_for(lambda: status_of(kubectl, "borrowing").get("borrowed") == {"cpu": "1"}, 90, "a core borrowed")
        assert status_of(kubectl, "plain").get("lent")
        held = status_of(kubectl, "reserving")
        assert "lent" not in held and hard_cpu(core, reserving, "reserving") == 2.0
        [batch] = held["reservations"]
        assert batch["name"] == "batch" and batch["active"] is True
        assert from_rfc3339(batch["start"]) <= now.timestamp() < from_rfc3339(batch["end"])
    finally:  # so that they lend to and borrow from no later test's Quotas
        kubectl("delete", "quotas.quartermaster.dev", "reserving", "plain", "borrowing")
