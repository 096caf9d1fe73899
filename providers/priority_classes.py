"""The PriorityClass actuator: one Kubernetes PriorityClass per Quota priority class
(`quartermaster-critical`, ... `quartermaster-low`), which pods name in
`priorityClassName` and the scheduler preempts by.

PriorityClasses are cluster-scoped and belong to no one Quota, so they carry the
operator's managed-by label but no owner; they stay when the operator goes, as pods may
still name them. Each call is a server-side apply of whole manifests under the operator's
field manager, forced as for the Quota's own objects, so a hand edit is put back. A
class's `value` is immutable: one of the same name with another value is refused by the
apiserver, and the failure logged every cycle until it is removed.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kubernetes import client

from quartermaster.planner.priority import PriorityClass
from quartermaster.providers.hpa import FIELD_MANAGER, MANAGED_BY_LABEL


def priority_class_name(level: PriorityClass) -> str:
    return f"quartermaster-{level.value}"


def priority_class_manifest(level: PriorityClass) -> dict:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": priority_class_name(level), "labels": {MANAGED_BY_LABEL: FIELD_MANAGER}},
            "value": level.kubernetes_value, "globalDefault": False, "preemptionPolicy": "PreemptLowerPriority",
            "description": f"Quartermaster's {level.value} priority class: for the workloads of Quotas "
                           f"with priorityClass {level.value}"}


@dataclass(frozen=True)
class PriorityClasses:
    """The PriorityClasses that do not hold what is wanted yet, as whole manifests."""

    manifests: tuple[dict, ...]
    actuator = "priorityclasses"
    event_reason = "AppliedPriorityClasses"

    def describe(self) -> str:
        return "applied " + ", ".join(f"PriorityClass {m['metadata']['name']} (value {m['value']})"
                                      for m in self.manifests)


class PriorityClassWriter:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = client.SchedulingV1Api(api)

    async def apply(self, classes: PriorityClasses) -> None:
        """Create or update each class to exactly its manifest (raises ApiException)."""
        for manifest in classes.manifests:
            await asyncio.to_thread(self._api.patch_priority_class, manifest["metadata"]["name"], manifest,
                                    field_manager=FIELD_MANAGER, force=True,
                                    _content_type="application/apply-patch+yaml")
