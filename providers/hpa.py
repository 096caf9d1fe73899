"""The HorizontalPodAutoscaler actuator: a ScalingPolicy's replica floor and ceiling, set on
an `autoscaling/v2` HPA it owns, which the HPA controller in kube-controller-manager then
enforces. Quartermaster never writes a workload's replicas itself.

Each call is a server-side apply of absolute values under the operator's field manager:
applying the same bounds twice changes nothing, and the HPA is created when absent. The
HPA is labelled and owner-referenced to its policy, so deleting the policy deletes it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping

from kubernetes import client

FIELD_MANAGER = "quartermaster"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
POLICY_LABEL = "quartermaster.dev/scaling-policy"
# An HPA a user made is adopted only when it carries this annotation set to "true".
ADOPT_ANNOTATION = "quartermaster.dev/adopt"
# What the HPA controller itself scales on between the policy's bounds: pods busy up to
# their cpu request. The policy's own target per replica works through minReplicas.
CPU_UTILIZATION = 100


@dataclass(frozen=True)
class ReplicaBounds:
    """What a policy asks of its HPA: absolute bounds for one target."""

    namespace: str
    hpa_name: str
    target_kind: str  # Deployment | StatefulSet
    target_name: str
    min_replicas: int
    max_replicas: int
    owner: Mapping  # the policy: apiVersion, kind, metadata {name, uid}
    actuator = "hpa"
    event_reason = "ScaledHPA"

    def describe(self) -> str:
        return (f"HPA {self.namespace}/{self.hpa_name}: minReplicas {self.min_replicas}, "
                f"maxReplicas {self.max_replicas} for {self.target_kind} {self.target_name}")


def hpa_manifest(bounds: ReplicaBounds) -> dict:
    owner = bounds.owner
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": bounds.hpa_name, "namespace": bounds.namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, POLICY_LABEL: owner["metadata"]["name"]},
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                 "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                 "controller": True, "blockOwnerDeletion": False}],
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": bounds.target_kind, "name": bounds.target_name},
            "minReplicas": bounds.min_replicas, "maxReplicas": bounds.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_UTILIZATION}}}],
        },
    }


class HorizontalPodAutoscalers:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = client.AutoscalingV2Api(api)

    async def apply(self, bounds: ReplicaBounds) -> None:
        """Create or update the HPA to exactly these bounds (raises ApiException)."""
        await asyncio.to_thread(
            self._api.patch_namespaced_horizontal_pod_autoscaler, bounds.hpa_name, bounds.namespace,
            hpa_manifest(bounds), field_manager=FIELD_MANAGER, force=True,
            _content_type="application/apply-patch+yaml")
