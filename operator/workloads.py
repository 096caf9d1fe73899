"""Workload identity: which controller a pod belongs to, and which workload a pod name
in Prometheus stands for.

Usage is kept per workload (Deployment, StatefulSet, DaemonSet, Job, or a bare Pod), not
per pod: pods come and go with every rollout, a workload's history outlives them. A
Deployment's pods are owned by a ReplicaSet named `<deployment>-<pod-template-hash>`, so
the Deployment is read from the ReplicaSet's name and the pod's hash label, with no need to
watch ReplicaSets. Pods that have gone (their samples are still in Prometheus) are matched
by the names their controller gives its pods, or by the owner labels of a query joined
with kube-state-metrics' `kube_pod_owner`.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, NamedTuple, Optional

from quartermaster.operator.quantities import to_float


class WorkloadKey(NamedTuple):
    namespace: str
    kind: str  # Deployment | StatefulSet | DaemonSet | Job | ReplicaSet | Pod | ...
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


def owner_of(namespace: str, pod: str, labels: Mapping[str, str],
             owner_references: Optional[Iterable[Mapping]]) -> WorkloadKey:
    """The workload a live pod belongs to: its controller, a ReplicaSet's Deployment."""
    controller = next((o for o in owner_references or () if o.get("controller")), None)
    if controller is None:
        return WorkloadKey(namespace, "Pod", pod)
    kind, name = controller.get("kind", ""), controller.get("name", "")
    template_hash = labels.get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return WorkloadKey(namespace, "Deployment", name[: -len(template_hash) - 1])
    return WorkloadKey(namespace, kind, name)


# The pod names each controller generates (the random suffixes have no dashes).
_POD_NAME_PATTERNS = {
    "Deployment": r"{name}-[a-z0-9]+-[a-z0-9]+",
    "ReplicaSet": r"{name}-[a-z0-9]+",
    "StatefulSet": r"{name}-[0-9]+",
    "DaemonSet": r"{name}-[a-z0-9]+",
    "Job": r"{name}-[a-z0-9]+",
    "Pod": r"{name}",
}


class PodResolver:
    """Maps (namespace, pod) names from Prometheus to workloads: live pods by their owner,
    gone pods by the names the workload's controller gives its pods."""

    def __init__(self, live: Mapping[tuple[str, str], WorkloadKey]) -> None:
        self._live = dict(live)
        self._workloads = set(live.values())
        patterns: dict[str, list[str]] = {}
        self._kind_of: dict[tuple[str, str], WorkloadKey] = {}
        for key in self._workloads:
            template = _POD_NAME_PATTERNS.get(key.kind)
            if template:
                group = f"w{len(self._kind_of)}"
                self._kind_of[(key.namespace, group)] = key
                patterns.setdefault(key.namespace, []).append(
                    f"(?P<{group}>{template.format(name=re.escape(key.name))})")
        self._patterns = {ns: re.compile("|".join(p)) for ns, p in patterns.items()}

    def workload(self, namespace: str, pod: str, labels: Mapping[str, str] | None = None) -> Optional[WorkloadKey]:
        """The pod's workload; for a gone pod, from `owner_kind`/`owner_name` labels (a
        query joined with kube-state-metrics' `kube_pod_owner`) where present, else by name."""
        key = self._live.get((namespace, pod))
        if key is not None:
            return key
        kind, name = (labels or {}).get("owner_kind"), (labels or {}).get("owner_name")
        if kind and name:
            deployment = WorkloadKey(namespace, "Deployment", name.rpartition("-")[0])
            return deployment if kind == "ReplicaSet" and deployment in self._workloads else \
                WorkloadKey(namespace, kind, name)
        pattern = self._patterns.get(namespace)
        match = pattern.fullmatch(pod) if pattern else None
        return self._kind_of[(namespace, match.lastgroup)] if match else None


class ContainerRequests(NamedTuple):
    """One container's requests, by resource (cores, bytes)."""

    name: str
    requests: Mapping[str, float]


class WorkloadTemplate(NamedTuple):
    """A Deployment's or StatefulSet's pod template, as far as requests go, and whether its
    last change has rolled out (every replica updated and ready)."""

    key: WorkloadKey
    replicas: int
    containers: tuple[ContainerRequests, ...]
    rolled_out: bool
    annotations: Mapping[str, str] = {}


def container_requests(pod_spec: Mapping) -> tuple[ContainerRequests, ...]:
    return tuple(ContainerRequests(c.get("name", ""), {
        r: to_float(v) for r, v in ((c.get("resources") or {}).get("requests") or {}).items()})
        for c in pod_spec.get("containers") or [])


def workload_template(kind: str, namespace: str, name: str, generation: int, spec: Mapping,
                      status: Mapping, annotations: Mapping[str, str] | None = None) -> WorkloadTemplate:
    replicas = int(spec["replicas"] if spec.get("replicas") is not None else 1)
    rolled_out = (int(status.get("observedGeneration") or 0) >= generation
                  and int(status.get("updatedReplicas") or 0) == replicas
                  and int(status.get("readyReplicas") or 0) == replicas
                  and int(status.get("replicas") or 0) == replicas)
    return WorkloadTemplate(WorkloadKey(namespace, kind, name), replicas,
                            container_requests((spec.get("template") or {}).get("spec") or {}), rolled_out,
                            dict(annotations or {}))
