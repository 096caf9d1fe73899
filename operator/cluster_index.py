"""In-memory indices of nodes, pods and namespaces (Kopf indexers), which the control
cycle reads, and the handlers that wake it when any of them changes."""
from __future__ import annotations

import kopf

from quartermaster.operator.accounting import node_record, pod_record
from quartermaster.operator.wake import cycle_wanted


@kopf.index("", "v1", "nodes")
def node_index(name, labels, spec, status, **_):
    return {name: node_record(name, labels, spec, status)}


@kopf.index("", "v1", "pods")
def pod_index(namespace, name, labels, spec, status, meta, **_):
    record = pod_record(namespace, name, labels, spec, status, meta.get("ownerReferences") or ())
    return {} if record is None else {(namespace, name): record}


@kopf.index("", "v1", "namespaces")
def namespace_index(name, labels, **_):
    return {name: dict(labels)}


@kopf.on.event("", "v1", "nodes")
@kopf.on.event("", "v1", "pods")
@kopf.on.event("", "v1", "namespaces")
async def on_cluster_change(**_):
    await cycle_wanted.notify()
