"""Evicting pods through the Eviction API (policy/v1), which respects PodDisruptionBudgets:
for the kwok provider's drains and for a ResourcePool's pressure evictions.

The apiserver answers an eviction a budget does not allow now with 429 Too Many Requests:
that is an answer, not an error (the pod stays, and may be asked for again later), so it
is returned as REFUSED, as a pod already gone (404) is returned as GONE; any other
refusal is the error itself, FAILED as an outcome (`outcome_of`).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kubernetes import client

from quartermaster.planner.evictions import EVICTED, FAILED, GONE, REFUSED


def evict_pod(core: client.CoreV1Api, namespace: str, name: str, uid: str = "") -> str:
    """EVICTED, REFUSED (a PodDisruptionBudget allows no disruption now) or GONE; any other
    refusal raises the client's ApiException. With `uid`, only that pod is evicted: one
    that has taken its name since (a StatefulSet's replacement) is GONE as well (409).
    Blocking: call it on a thread."""
    preconditions = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)) if uid else None
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace),
                                 delete_options=preconditions)
    try:
        core.create_namespaced_pod_eviction(name, namespace, eviction)
    except client.ApiException as error:
        if error.status == 429:
            return REFUSED
        if error.status == 404 or (uid and error.status == 409):
            return GONE
        raise
    return EVICTED


def outcome_of(answer: str | client.ApiException) -> str:
    """An eviction's outcome from what `PodEvicter.apply` said of its pod: EVICTED, REFUSED,
    GONE as such, FAILED for the error the apiserver answered."""
    return FAILED if isinstance(answer, client.ApiException) else answer


@dataclass(frozen=True)
class PodEvictions:
    """A ResourcePool's round of pressure evictions: (namespace, name, uid) of each pod, in order."""

    pods: tuple[tuple[str, str, str], ...]
    actuator = "evictions"

    def describe(self) -> str:
        return "evicting " + ", ".join(f"{namespace}/{name}" for namespace, name, _ in self.pods)


class PodEvicter:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    async def apply(self, evictions: PodEvictions) -> dict[str, str | client.ApiException]:
        """Each pod's outcome (EVICTED, REFUSED, GONE), or the error the apiserver answered,
        by namespace/name; one pod's error does not stop the others."""
        outcomes = {}
        for namespace, name, uid in evictions.pods:
            try:
                outcomes[f"{namespace}/{name}"] = await asyncio.to_thread(evict_pod, self._core, namespace, name, uid)
            except client.ApiException as error:
                outcomes[f"{namespace}/{name}"] = error
        return outcomes
