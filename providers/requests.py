"""The workload-requests actuator: containers' requests set on a Deployment's or
StatefulSet's pod template (the controller then rolls the pods to them), or on running
pods through their `resize` subresource (an in-place resize, no restart where the
runtime allows it).

Each call writes absolute values for the containers it names and nothing else: applying
it twice changes nothing. Resources a container requests and the action does not name
keep their value (a strategic merge by container name).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kubernetes import client

from quartermaster.operator.quantities import format_quantity
from quartermaster.operator.workloads import ContainerRequests
from quartermaster.providers.hpa import FIELD_MANAGER

STRATEGIC_MERGE = "application/strategic-merge-patch+json"


def _requests_text(containers: tuple[ContainerRequests, ...]) -> str:
    return "; ".join(f"{c.name}: " + ", ".join(f"{r} {format_quantity(r, v)}" for r, v in sorted(c.requests.items()))
                     for c in containers)


def _containers_patch(containers: tuple[ContainerRequests, ...]) -> list[dict]:
    return [{"name": c.name, "resources": {"requests": {r: format_quantity(r, v) for r, v in c.requests.items()}}}
            for c in containers]


@dataclass(frozen=True)
class TemplateRequests:
    """Requests for the containers of a workload's pod template (a rolling update)."""

    namespace: str
    kind: str  # Deployment | StatefulSet
    name: str
    containers: tuple[ContainerRequests, ...]
    actuator = "requests"
    event_reason = "UpdatedRequests"

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name} pod template: {_requests_text(self.containers)}"


@dataclass(frozen=True)
class PodResize:
    """Requests for the containers of running pods, resized in place."""

    namespace: str
    pods: tuple[str, ...]
    containers: tuple[ContainerRequests, ...]
    actuator = "resize"
    event_reason = "ResizedPods"

    def describe(self) -> str:
        return f"pods {', '.join(self.pods)} in {self.namespace} resized in place: {_requests_text(self.containers)}"


class WorkloadRequests:
    def __init__(self, api: client.ApiClient) -> None:
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)

    async def apply(self, action: TemplateRequests | PodResize) -> None:
        """Write the action's requests (raises ApiException)."""
        containers = _containers_patch(action.containers)
        if isinstance(action, TemplateRequests):
            patch = (self._apps.patch_namespaced_deployment if action.kind == "Deployment"
                     else self._apps.patch_namespaced_stateful_set)
            await asyncio.to_thread(patch, action.name, action.namespace,
                                    {"spec": {"template": {"spec": {"containers": containers}}}},
                                    field_manager=FIELD_MANAGER, _content_type=STRATEGIC_MERGE)
            return
        for pod in action.pods:
            await asyncio.to_thread(self._core.patch_namespaced_pod_resize, pod, action.namespace,
                                    {"spec": {"containers": containers}},
                                    field_manager=FIELD_MANAGER, _content_type=STRATEGIC_MERGE)
