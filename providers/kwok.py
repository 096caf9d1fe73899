"""The kwok node-pool provider: a pool is a set of fake Nodes of one instance type, which
kwok (started with `--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake`)
marks Ready and runs pods on, as Karpenter's kwok provider does.

Pools are configured, not discovered: `pools` maps each name to its instanceType (from
the table's aws catalogue), minSize, maxSize, and optionally zone, spotPercentage and
taints. A pool's nodes are the Nodes labelled `quartermaster.dev/node-pool=<name>`.

A call that names an instance type or a spot percentage makes it the pool's from then on
(kept in memory, over the configured options, until the operator restarts and asks again):
new Nodes are of that type, and labelled spot or on-demand to keep that share of spot.

Growing creates Nodes (after taking back any node of the pool still being drained).
Shrinking picks nodes to remove (ones already draining first, then the capacity type
above its share, then the fewest pods), cordons and marks each, evicts its pods through
the Eviction API, and deletes the node once no pod but a DaemonSet's is left on it. An
eviction that a PodDisruptionBudget refuses (HTTP 429) is skipped and reported in the
pool's `blocked`; the next call with the same size goes on from there, so callers repeat
the absolute size every cycle until `size` reaches it.
"""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import replace

from kubernetes import client

from quartermaster.providers.evictions import REFUSED, evict_pod
from quartermaster.providers.interface import (
    ON_DEMAND, SPOT, InstanceType, NodePool, NotFound, Rejected, Unauthorized, check_size, table_instance_types)

POOL_LABEL = "quartermaster.dev/node-pool"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# Marks a node this provider cordoned to remove it, so a later grow takes it back
# rather than uncordoning a node a person cordoned.
DRAINING_ANNOTATION = "quartermaster.dev/draining"
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
DEFAULT_ZONE = "kwok-a"


def spot_target(size: int, spot_percentage: int) -> int:
    """Spot nodes in a pool of `size` nodes: the percentage, rounded down."""
    return size * spot_percentage // 100


def node_manifest(name: str, pool: str, kind: InstanceType, capacity_type: str, zone: str,
                  taints: list[Mapping]) -> dict:
    allocatable = {resource: str(int(value)) if resource != "cpu" else f"{round(value * 1000)}m"
                   for resource, value in kind.allocatable.items() if value}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": dict(KWOK_ANNOTATION), "labels": {
            POOL_LABEL: pool, INSTANCE_TYPE_LABEL: kind.name, CAPACITY_TYPE_LABEL: capacity_type,
            ZONE_LABEL: zone, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "type": "kwok", MANAGED_BY_LABEL: "quartermaster"}},
        "spec": {"taints": list(taints)},
        "status": {"allocatable": allocatable, "capacity": allocatable},
    }


async def _call(what: str, method, *args, ignore: tuple[int, ...] = (), **kwargs):
    """A blocking client call on a thread; its failure as a typed error naming `what`,
    except for the HTTP statuses in `ignore` (None then)."""
    try:
        return await asyncio.to_thread(method, *args, **kwargs)
    except client.ApiException as error:
        if error.status in ignore:
            return None
        if error.status in (401, 403):
            raise Unauthorized(f"{what}: {error.reason}") from error
        if error.status == 404:
            raise NotFound(f"{what}: {error.reason}") from error
        raise


class KwokNodePools:
    def __init__(self, pools: Mapping[str, Mapping], api: client.ApiClient | None = None,
                 catalogue: str = "aws") -> None:
        self._pools = dict(pools)
        self._api = api or client.ApiClient()
        self._core = client.CoreV1Api(self._api)
        self._types = {kind.name: kind for kind in table_instance_types(catalogue)}
        self._asked: dict[str, dict] = {}  # per pool: the instanceType and spotPercentage last asked for
        for name, spec in self._pools.items():
            if spec["instanceType"] not in self._types:
                raise ValueError(f"node pool {name}: unknown instance type {spec['instanceType']!r}")

    async def instance_types(self) -> list[InstanceType]:
        return list(self._types.values())

    async def list_node_pools(self) -> list[NodePool]:
        return [await self.describe(name) for name in self._pools]

    async def describe(self, pool: str) -> NodePool:
        """Desired: the nodes in service and not draining; size: all the pool's nodes."""
        active, draining = await self._nodes(pool)
        return self._state(pool, len(active), len(active) + len(draining))

    async def set_desired_size(self, pool: str, size: int, instance_type: str | None = None,
                               spot_percentage: int | None = None) -> NodePool:
        check_size(self._state(pool, 0, 0), size)
        if instance_type is not None and instance_type not in self._types:
            raise Rejected(f"node pool {pool}: no instance type {instance_type!r} in the kwok provider's table")
        if spot_percentage is not None and not 0 <= spot_percentage <= 100:
            raise Rejected(f"node pool {pool}: spot percentage {spot_percentage} is outside [0, 100]")
        asked = {"instanceType": instance_type, "spotPercentage": spot_percentage}
        self._asked.setdefault(pool, {}).update({k: v for k, v in asked.items() if v is not None})
        active, draining = await self._nodes(pool)
        spot_percentage = self._spec(pool).get("spotPercentage", 0)
        while len(active) < size and draining:
            node = draining.pop()
            await self._patch_node(node.metadata.name, {
                "metadata": {"annotations": {DRAINING_ANNOTATION: None}}, "spec": {"unschedulable": None}})
            active.append(node)
        if len(active) < size:
            spot = sum(_capacity_type(n) == SPOT for n in active)
            for index in range(len(active), size):
                capacity_type = SPOT if spot < spot_target(index + 1, spot_percentage) else ON_DEMAND
                spot += capacity_type == SPOT
                await self._create_node(pool, capacity_type)
        elif len(active) > size:
            for node in await self._leavers(active, size, spot_percentage):
                await self._patch_node(node.metadata.name, {
                    "metadata": {"annotations": {DRAINING_ANNOTATION: "true"}}, "spec": {"unschedulable": True}})
                draining.append(node)
        blocked = []
        for node in draining:
            blocked += await self._drain(node.metadata.name)
        return replace(await self.describe(pool), blocked=tuple(blocked))

    def _spec(self, pool: str) -> Mapping:
        if pool not in self._pools:
            raise NotFound(f"kwok node pool {pool!r} is not configured; configured: {', '.join(self._pools)}")
        return {**self._pools[pool], **self._asked.get(pool, {})}

    def _state(self, pool: str, desired: int, size: int) -> NodePool:
        spec = self._spec(pool)
        return NodePool(pool, spec["instanceType"], (spec.get("zone", DEFAULT_ZONE),), int(spec["minSize"]),
                        int(spec["maxSize"]), desired, size, int(spec.get("spotPercentage", 0)))

    async def _nodes(self, pool: str) -> tuple[list[client.V1Node], list[client.V1Node]]:
        """The pool's nodes in service and those being drained, each sorted by name."""
        self._spec(pool)
        nodes = (await _call(f"listing the nodes of pool {pool}", self._core.list_node,
                             label_selector=f"{POOL_LABEL}={pool}")).items
        nodes.sort(key=lambda n: n.metadata.name)
        draining = [n for n in nodes if (n.metadata.annotations or {}).get(DRAINING_ANNOTATION) == "true"]
        return [n for n in nodes if n not in draining], draining

    async def _create_node(self, pool: str, capacity_type: str) -> None:
        spec = self._spec(pool)
        name = f"{pool}-{secrets.token_hex(3)}"
        manifest = node_manifest(name, pool, self._types[spec["instanceType"]], capacity_type,
                                 spec.get("zone", DEFAULT_ZONE), spec.get("taints", []))
        await _call(f"creating node {name}", self._core.create_node, manifest)

    async def _patch_node(self, name: str, patch: dict) -> None:
        await _call(f"patching node {name}", self._core.patch_node, name, patch)

    async def _pods_on(self, node: str) -> list[client.V1Pod]:
        """The pods a drain has to move off `node`: not a DaemonSet's, not finished."""
        pods = (await _call(f"listing the pods on node {node}", self._core.list_pod_for_all_namespaces,
                            field_selector=f"spec.nodeName={node}")).items
        return [p for p in pods if p.status.phase not in ("Succeeded", "Failed")
                and not any(o.kind == "DaemonSet" for o in p.metadata.owner_references or ())]

    async def _leavers(self, active: list[client.V1Node], size: int, spot_percentage: int) -> list[client.V1Node]:
        """The nodes to remove to leave `size`: from the capacity type above its share
        first, then the ones with the fewest pods to move."""
        pods = {n.metadata.name: len(await self._pods_on(n.metadata.name)) for n in active}
        keep_spot = spot_target(size, spot_percentage)
        spot, leavers, remaining = sum(_capacity_type(n) == SPOT for n in active), [], list(active)
        for _ in range(len(active) - size):
            surplus = SPOT if spot > keep_spot else ON_DEMAND
            candidates = [n for n in remaining if _capacity_type(n) == surplus] or remaining
            node = min(candidates, key=lambda n: (pods[n.metadata.name], n.metadata.name))
            remaining.remove(node)
            leavers.append(node)
            spot -= _capacity_type(node) == SPOT
        return leavers

    async def _drain(self, node: str) -> list[str]:
        """Evict what is left on a cordoned node and delete it once empty; return why it
        is not gone yet (the evictions a PodDisruptionBudget refused)."""
        pods = await self._pods_on(node)
        blocked = []
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None:
                continue
            name, namespace = pod.metadata.name, pod.metadata.namespace
            if await _call(f"evicting {namespace}/{name}", evict_pod, self._core, namespace, name) == REFUSED:
                blocked.append(f"node {node}: evicting {namespace}/{name} would violate its "
                               "PodDisruptionBudget now; tried again on the next call")
        if not pods:
            await _call(f"deleting node {node}", self._core.delete_node, node, ignore=(404,))
        return blocked


def _capacity_type(node: client.V1Node) -> str:
    return (node.metadata.labels or {}).get(CAPACITY_TYPE_LABEL, ON_DEMAND)
