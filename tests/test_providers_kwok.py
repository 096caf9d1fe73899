"""The kwok node-pool provider against the simulated cluster's real kube-apiserver, with
kwok marking the Nodes it creates Ready and running their pods, and the controller-manager
keeping PodDisruptionBudgets."""
from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client

from conftest import wait_for
from quartermaster.providers.interface import NodePoolProvider, NotFound, Rejected, Unauthorized
from quartermaster.providers.kwok import CAPACITY_TYPE_LABEL, DRAINING_ANNOTATION, POOL_LABEL, KwokNodePools

NAMESPACE = "kwok-pools"
# Pool nodes carry this taint so that other tests' pods never land on them.
TAINT = {"key": "quartermaster.dev/test", "value": "kwok-pools", "effect": "NoSchedule"}


def pool(instance_type="m5.xlarge", min_size=0, max_size=6, **more) -> dict:
    return {"instanceType": instance_type, "minSize": min_size, "maxSize": max_size, "taints": [TAINT], **more}


@pytest.fixture(scope="module")
def api(sim_cluster, control_plane):
    control_plane.create_namespace(NAMESPACE)
    with control_plane.api_client() as api:
        yield api
        client.CoreV1Api(api).delete_collection_node(label_selector=POOL_LABEL)


def pool_nodes(api, name: str) -> list[client.V1Node]:
    return sorted(client.CoreV1Api(api).list_node(label_selector=f"{POOL_LABEL}={name}").items,
                  key=lambda n: n.metadata.name)


def ready(node: client.V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or ())


def deployment_on_pool(kubectl, name: str, pool_name: str, replicas: int, cpu: str) -> None:
    """A Deployment whose pods only fit the pool's nodes."""
    kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"nodeSelector": {POOL_LABEL: pool_name},
                     "tolerations": [{"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"],
                                      "effect": "NoSchedule"}],
                     "containers": [{"name": "app", "image": "fake", "resources": {"requests": {"cpu": cpu}}}]}}}}))


def pods_of(api, app: str) -> list[client.V1Pod]:
    return client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=f"app={app}").items


def test_kwok_provider_is_a_node_pool_provider(api):
    assert isinstance(KwokNodePools({"p": pool()}, api), NodePoolProvider)


def test_grow_creates_ready_nodes_of_the_instance_type_once(api):
    provider = KwokNodePools({"grow": pool("c5.2xlarge", spotPercentage=50)}, api)
    state = asyncio.run(provider.set_desired_size("grow", 4))
    assert (state.desired_size, state.size, state.instance_type, state.spot_percentage) == (4, 4, "c5.2xlarge", 50)
    nodes = wait_for(lambda: (n := pool_nodes(api, "grow")) and all(map(ready, n)) and n, 60, "4 Ready pool nodes")
    assert len(nodes) == 4
    assert {n.status.allocatable["cpu"] for n in nodes} == {"7910m"}
    assert {n.metadata.labels["node.kubernetes.io/instance-type"] for n in nodes} == {"c5.2xlarge"}
    assert sorted(n.metadata.labels[CAPACITY_TYPE_LABEL] for n in nodes) == ["on-demand"] * 2 + ["spot"] * 2
    # Absolute and idempotent: the same size again creates nothing and removes nothing.
    asyncio.run(provider.set_desired_size("grow", 4))
    assert [n.metadata.name for n in pool_nodes(api, "grow")] == [n.metadata.name for n in nodes]
    assert [p.desired_size for p in asyncio.run(provider.list_node_pools())] == [4]


def test_shrink_drains_but_stops_at_a_pod_disruption_budget(api, kubectl):
    provider = KwokNodePools({"drain": pool(max_size=3)}, api)
    asyncio.run(provider.set_desired_size("drain", 2))
    wait_for(lambda: sum(map(ready, pool_nodes(api, "drain"))) == 2, 60, "2 Ready nodes")
    # One pod of 3 cores: it fills one m5.xlarge (3.92 cores), so the other node stays empty.
    deployment_on_pool(kubectl, "guarded", "drain", 1, "3")
    kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))
    pod = wait_for(lambda: [p for p in pods_of(api, "guarded") if p.status.phase == "Running"], 90, "guarded Running")[0]
    wait_for(lambda: client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
        "guarded", NAMESPACE).status.current_healthy == 1, 60, "the PDB to count the pod")

    # Down to one: the empty node goes at once, the pod's node stays.
    state = asyncio.run(provider.set_desired_size("drain", 1))
    assert [n.metadata.name for n in pool_nodes(api, "drain")] == [pod.spec.node_name]
    assert (state.desired_size, state.size, state.blocked) == (1, 1, ())

    # Down to none: the node is cordoned, the eviction refused by the PDB and reported.
    state = asyncio.run(provider.set_desired_size("drain", 0))
    assert (state.desired_size, state.size) == (0, 1)
    assert len(state.blocked) == 1 and f"{NAMESPACE}/{pod.metadata.name}" in state.blocked[0]
    (node,) = pool_nodes(api, "drain")
    assert node.spec.unschedulable and node.metadata.annotations[DRAINING_ANNOTATION] == "true"
    assert [p.metadata.name for p in pods_of(api, "guarded")] == [pod.metadata.name]

    # Growing again takes the draining node back rather than making a new one.
    state = asyncio.run(provider.set_desired_size("drain", 1))
    (back,) = pool_nodes(api, "drain")
    assert back.metadata.name == node.metadata.name and not back.spec.unschedulable
    assert (state.desired_size, state.blocked) == (1, ())

    # Once the PDB allows it, the pod is evicted and the emptied node deleted.
    kubectl("delete", "-n", NAMESPACE, "pdb", "guarded")
    wait_for(lambda: not asyncio.run(provider.set_desired_size("drain", 0)).size, 90, "the pool to drain")
    assert pool_nodes(api, "drain") == []
    assert pod.metadata.name not in [p.metadata.name for p in pods_of(api, "guarded")]


def test_shrink_keeps_the_spot_share(api):
    provider = KwokNodePools({"mix": pool(spotPercentage=25)}, api)
    for _ in range(3):  # new node names each round: a choice by name alone would go wrong in one
        asyncio.run(provider.set_desired_size("mix", 4))
        assert sorted(n.metadata.labels[CAPACITY_TYPE_LABEL] for n in pool_nodes(api, "mix")) == [
            "on-demand"] * 3 + ["spot"]
        asyncio.run(provider.set_desired_size("mix", 3))  # 25 % of 3 rounds down: the spot node goes
        assert [n.metadata.labels[CAPACITY_TYPE_LABEL] for n in pool_nodes(api, "mix")] == ["on-demand"] * 3


def test_an_instance_type_and_spot_share_asked_for_make_the_new_nodes(api):
    def shapes(names=None) -> list[tuple[str, str]]:
        return sorted((n.metadata.labels["node.kubernetes.io/instance-type"], n.metadata.labels[CAPACITY_TYPE_LABEL])
                      for n in pool_nodes(api, "shaped") if names is None or n.metadata.name not in names)

    provider = KwokNodePools({"shaped": pool("m5.xlarge")}, api)
    asyncio.run(provider.set_desired_size("shaped", 1))
    state = asyncio.run(provider.set_desired_size("shaped", 3, instance_type="c5.xlarge", spot_percentage=100))
    assert (state.instance_type, state.spot_percentage, state.desired_size) == ("c5.xlarge", 100, 3)
    # the node there was stays as it is; the two new ones are of the type and share asked for
    assert shapes() == [("c5.xlarge", "spot"), ("c5.xlarge", "spot"), ("m5.xlarge", "on-demand")]
    # None keeps what was asked last; on-demand from now on
    before = {n.metadata.name for n in pool_nodes(api, "shaped")}
    state = asyncio.run(provider.set_desired_size("shaped", 4, spot_percentage=0))
    assert (state.instance_type, state.spot_percentage) == ("c5.xlarge", 0)
    assert shapes(before) == [("c5.xlarge", "on-demand")]
    with pytest.raises(Rejected, match="no instance type 'x9.huge'"):
        asyncio.run(provider.set_desired_size("shaped", 4, instance_type="x9.huge"))


def test_unknown_pool_and_size_out_of_bounds_are_typed_errors(api):
    provider = KwokNodePools({"bounded": pool(min_size=1, max_size=2)}, api)
    with pytest.raises(NotFound, match="'elsewhere' is not configured"):
        asyncio.run(provider.describe("elsewhere"))
    with pytest.raises(Rejected, match=r"size 3 is outside \[1, 2\]"):
        asyncio.run(provider.set_desired_size("bounded", 3))
    assert pool_nodes(api, "bounded") == []


def test_no_permission_to_list_nodes_is_unauthorized(api, control_plane, kubectl, tmp_path):
    kubectl("create", "serviceaccount", "-n", NAMESPACE, "no-rights")
    kubeconfig = control_plane.kubeconfig_for_service_account(NAMESPACE, "no-rights", tmp_path / "kubeconfig")
    with control_plane.api_client(kubeconfig) as limited:
        with pytest.raises(Unauthorized, match="listing the nodes of pool p"):
            asyncio.run(KwokNodePools({"p": pool()}, limited).describe("p"))
