"""The ResourceQuota and LimitRange actuator: a Quota's limits, written as the Kubernetes
objects the apiserver itself enforces (its quota admission refuses a pod over a
ResourceQuota's hard limits; its LimitRanger fills in a container's default requests).

Each call is a server-side apply of whole manifests (absolute values) under the operator's
field manager: applying the same objects twice changes nothing, and an object is created
when absent. Each is labelled with its Quota and owner-referenced to it (a namespaced
object may have a cluster-scoped owner), so the garbage collector deletes them with it.
An object the Quota no longer wants (its namespace left the scope) is deleted by name with
its uid as a precondition, so only the very object the operator found labelled as its own
is deleted; one already gone is no error.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Optional

from kubernetes import client

from quartermaster.providers.hpa import FIELD_MANAGER, MANAGED_BY_LABEL

QUOTA_LABEL = "quartermaster.dev/quota"


def object_name(quota: str) -> str:
    """The name of a Quota's ResourceQuota and LimitRange in each namespace; the prefix
    keeps them apart from objects of the same name that users made."""
    return f"quartermaster-{quota}"


def _metadata(namespace: str, owner: Mapping) -> dict:
    name = owner["metadata"]["name"]
    return {"name": object_name(name), "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, QUOTA_LABEL: name},
            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name,
                                 "uid": owner["metadata"]["uid"], "controller": True,
                                 "blockOwnerDeletion": False}]}


def resource_quota_manifest(namespace: str, hard: Mapping[str, str], owner: Mapping) -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _metadata(namespace, owner),
            "spec": {"hard": dict(hard)}}


def limit_range_manifest(namespace: str, default_requests: Mapping[str, str], default_limits: Mapping[str, str],
                         owner: Mapping) -> dict:
    limit = {"type": "Container"}
    # the apiserver's own defaulting: a resource with a default limit and no default
    # request gets the limit as its request; written out, the manifest is what it holds
    default_requests = {**default_limits, **default_requests}
    if default_requests:
        limit["defaultRequest"] = default_requests
    if default_limits:
        limit["default"] = dict(default_limits)
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": _metadata(namespace, owner),
            "spec": {"limits": [limit]}}


class UnwantedObject(NamedTuple):
    """A ResourceQuota or LimitRange of a Quota's that it no longer wants, as found."""

    kind: str
    namespace: str
    name: str
    uid: Optional[str]


@dataclass(frozen=True)
class QuotaObjects:
    """What a Quota asks of the apiserver this cycle: the owned objects that do not hold
    what it wants yet, as whole manifests, and those it no longer wants."""

    quota: str
    manifests: tuple[dict, ...]
    deletions: tuple[UnwantedObject, ...] = ()
    actuator = "quotas"
    event_reason = "AppliedQuota"

    def describe(self) -> str:
        applied = ", ".join(
            f"{m['kind']} {m['metadata']['namespace']}/{m['metadata']['name']}"
            + (f" (hard {_listed(m['spec']['hard'])})" if m["kind"] == "ResourceQuota" else "")
            for m in self.manifests)
        deleted = ", ".join(f"{o.kind} {o.namespace}/{o.name}" for o in self.deletions)
        return "; ".join(([f"applied {applied}"] if applied else [])
                         + ([f"deleted {deleted} (out of the Quota's scope or no longer wanted)"] if deleted else []))


def _listed(amounts: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in amounts.items())


class QuotaObjectWriter:
    def __init__(self, api: client.ApiClient) -> None:
        self._api = client.CoreV1Api(api)

    async def apply(self, objects: QuotaObjects) -> None:
        """Delete the objects no longer wanted, then create or update each object to exactly
        its manifest (raises ApiException)."""
        delete = {"ResourceQuota": self._api.delete_namespaced_resource_quota,
                  "LimitRange": self._api.delete_namespaced_limit_range}
        for found in objects.deletions:
            options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=found.uid))
            try:
                await asyncio.to_thread(delete[found.kind], found.name, found.namespace, body=options)
            except client.ApiException as error:
                # gone already, or another object by the name now (not the one found as ours)
                if error.status not in (404, 409):
                    raise
        patch = {"ResourceQuota": self._api.patch_namespaced_resource_quota,
                 "LimitRange": self._api.patch_namespaced_limit_range}
        for manifest in objects.manifests:
            meta = manifest["metadata"]
            await asyncio.to_thread(patch[manifest["kind"]], meta["name"], meta["namespace"], manifest,
                                    field_manager=FIELD_MANAGER, force=True,
                                    _content_type="application/apply-patch+yaml")
