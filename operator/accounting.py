"""Pure pool accounting: which nodes and pods belong to a pool, and what they add up to.

Records are built from Kubernetes objects by the indexers; `summarise` never does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from quartermaster.operator.models import PressureThreshold, PressureThresholds, ResourcePoolSpec
from quartermaster.operator.quantities import RESOURCES, to_float
from quartermaster.operator.selectors import matches
from quartermaster.operator.workloads import ContainerRequests, WorkloadKey, container_requests, owner_of

# Nodes of a provider's node pool carry this label (the kwok provider sets it; cloud pools'
# node templates must).
NODE_POOL_LABEL = "quartermaster.dev/node-pool"
_TERMINAL_PHASES = ("Succeeded", "Failed")
# Pod-level requests (PodLevelResources) the scheduler honours, of the resources counted here.
_POD_LEVEL_RESOURCES = ("cpu", "memory")


@dataclass(frozen=True)
class NodeRecord:
    name: str
    labels: Mapping[str, str]
    allocatable: Mapping[str, float]
    schedulable: bool = True
    taints: tuple[str, ...] = ()  # the keys of its taints


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    labels: Mapping[str, str]
    node: Optional[str]
    requests: Mapping[str, float]
    owner: Optional[WorkloadKey] = None
    node_selector: Mapping[str, str] = field(default_factory=dict)  # where a pending pod may land
    containers: tuple[ContainerRequests, ...] = ()  # each container's own requests
    oom_killed: tuple[str, ...] = ()  # containers whose last state is an OOMKill
    uid: str = ""
    priority: int = 0  # spec.priority, which admission sets from priorityClassName (0 without one)
    priority_class_name: str = ""
    deleting: bool = False  # a deletionTimestamp is set: it is going already


@dataclass(frozen=True)
class PoolSummary:
    capacity: dict[str, float]
    requested: dict[str, float]
    free: dict[str, float]
    nodes: int
    members: int
    member_pods: tuple[PodRecord, ...] = ()


def _resource_amounts(values: Mapping[str, object] | None) -> dict[str, float]:
    values = values or {}
    return {r: to_float(values[r]) for r in RESOURCES if r in values}


def node_record(name: str, labels: Mapping[str, str], spec: Mapping, status: Mapping) -> NodeRecord:
    return NodeRecord(
        name=name,
        labels=dict(labels),
        allocatable=_resource_amounts(status.get("allocatable")),
        schedulable=not spec.get("unschedulable", False),
        taints=tuple(t.get("key", "") for t in spec.get("taints") or ()),
    )


def pod_requests(spec: Mapping) -> dict[str, float]:
    """The scheduler's effective request (k8s.io/component-helpers resource.PodRequests).

    Running: the containers plus the native sidecars (init containers with
    `restartPolicy: Always`), which keep running. Each init step needs its own request plus
    the sidecars started before it (a sidecar's own step, the sidecars so far). The pod needs
    the larger of the two; pod-level `spec.resources.requests` replace that for cpu and
    memory; overhead comes on top. Every pod also takes one of its node's `pods`.
    (While an in-place resize is in flight the scheduler also counts the container status's
    resources; this counts the spec's.)
    """
    def requests(container: Mapping) -> dict[str, float]:
        return _resource_amounts((container.get("resources") or {}).get("requests"))

    containers = [requests(c) for c in spec.get("containers") or []]
    inits = [(requests(c), c.get("restartPolicy") == "Always") for c in spec.get("initContainers") or []]
    pod_level = _resource_amounts((spec.get("resources") or {}).get("requests"))
    overhead = _resource_amounts(spec.get("overhead"))
    total = {}
    for resource in RESOURCES:
        running = sum(c.get(resource, 0.0) for c in containers)
        sidecars = init_peak = 0.0
        for amounts, sidecar in inits:
            amount = amounts.get(resource, 0.0)
            if sidecar:
                running += amount
                sidecars += amount
                step = sidecars
            else:
                step = amount + sidecars
            init_peak = max(init_peak, step)
        effective = max(running, init_peak)
        if resource in _POD_LEVEL_RESOURCES and resource in pod_level:
            effective = pod_level[resource]
        total[resource] = effective + overhead.get(resource, 0.0)
    total["pods"] = 1.0
    return total


def pod_record(namespace: str, name: str, labels: Mapping[str, str], spec: Mapping,
               status: Mapping, meta: Mapping = {}) -> Optional[PodRecord]:
    """None for pods that no longer hold resources (Succeeded or Failed). `meta`: the pod's
    metadata, for its ownerReferences, uid and deletionTimestamp."""
    if status.get("phase") in _TERMINAL_PHASES:
        return None
    oom_killed = tuple(c.get("name", "") for c in status.get("containerStatuses") or []
                       if ((c.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled")
    return PodRecord(namespace, name, dict(labels), spec.get("nodeName"), pod_requests(spec),
                     owner_of(namespace, name, labels, meta.get("ownerReferences") or ()),
                     dict(spec.get("nodeSelector") or {}), container_requests(spec), oom_killed,
                     meta.get("uid") or "", int(spec.get("priority") or 0), spec.get("priorityClassName") or "",
                     meta.get("deletionTimestamp") is not None)


def pool_nodes(spec: ResourcePoolSpec, nodes: Iterable[NodeRecord]) -> list[NodeRecord]:
    selected = [n for n in nodes if n.schedulable and matches(spec.node_selector, n.labels)]
    if spec.provider_node_pool is not None:
        selected = [n for n in selected if n.labels.get(NODE_POOL_LABEL) == spec.provider_node_pool.name]
    return selected


def pool_members(spec: ResourcePoolSpec, pods: Iterable[PodRecord],
                 namespace_labels: Mapping[str, Mapping[str, str]],
                 nodes: Optional[list[NodeRecord]] = None) -> list[PodRecord]:
    """The pods the pool's workload selector picks that draw on its nodes: running on one,
    or pending with a node selector one of them satisfies, or (a provider's node pool, which
    may have no nodes yet) that names the pool's node label. `nodes` None (a fixed-capacity
    pool) leaves placement out."""
    wanted = spec.workloads
    names = None if nodes is None else {n.name for n in nodes}
    provider_pool = None if spec.provider_node_pool is None else spec.provider_node_pool.name

    def placed(pod: PodRecord) -> bool:
        if names is None:
            return True
        if pod.node is not None:
            return pod.node in names
        if provider_pool is not None and pod.node_selector.get(NODE_POOL_LABEL) == provider_pool:
            return True
        return any(all(n.labels.get(k) == v for k, v in pod.node_selector.items()) for n in nodes)

    return [
        p for p in pods
        if (not wanted.namespaces or p.namespace in wanted.namespaces)
        and (wanted.namespace_selector is None
             or matches(wanted.namespace_selector, namespace_labels.get(p.namespace, {})))
        and matches(wanted.selector, p.labels)
        and placed(p)
    ]


def threshold_for(thresholds: PressureThresholds, resource: str) -> PressureThreshold:
    return thresholds.gpu if resource == "nvidia.com/gpu" else getattr(thresholds, resource)


def summarise(spec: ResourcePoolSpec, nodes: Iterable[NodeRecord], pods: Iterable[PodRecord],
              namespace_labels: Mapping[str, Mapping[str, str]]) -> PoolSummary:
    selected = pool_nodes(spec, nodes)
    members = pool_members(spec, pods, namespace_labels,
                           None if spec.fixed_capacity is not None else selected)
    if spec.fixed_capacity is not None:
        fixed = spec.fixed_capacity.model_dump(by_alias=True, exclude_none=True)
        capacity = {r: to_float(fixed.get(r)) for r in RESOURCES}
    else:
        capacity = {r: sum(n.allocatable.get(r, 0.0) for n in selected) for r in RESOURCES}
    requested = {r: sum(p.requests.get(r, 0.0) for p in members) for r in RESOURCES}
    free = {r: max(capacity[r] - requested[r], 0.0) for r in RESOURCES}
    return PoolSummary(capacity, requested, free, len(selected), len(members), tuple(members))
