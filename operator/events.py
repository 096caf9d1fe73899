"""Kubernetes Events that explain the operator's decisions.

Kopf files events on cluster-scoped objects with the involved object's namespace set to
"default", which hides them from `kubectl describe`; these are filed the way the kubelet
files Node events: in "default", with an involvedObject that has no namespace.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping

from kubernetes import client

from quartermaster.operator import kube

COMPONENT = "quartermaster"


def event_for(body: Mapping, reason: str, message: str, warning: bool = False) -> client.CoreV1Event:
    meta = body["metadata"]
    now = datetime.now(timezone.utc)
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta.get("namespace") or "default"),
        involved_object=client.V1ObjectReference(
            api_version=body["apiVersion"], kind=body["kind"], name=meta["name"], uid=meta.get("uid"),
            namespace=meta.get("namespace"), resource_version=meta.get("resourceVersion")),
        reason=reason,
        message=message[:1024],
        type="Warning" if warning else "Normal",
        source=client.V1EventSource(component=COMPONENT),
        reporting_component=COMPONENT,
        reporting_instance=COMPONENT,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
    )


async def record(body: Mapping, reason: str, message: str, warning: bool = False) -> None:
    await kube.create_event(event_for(body, reason, message, warning))
