"""In-memory indices of nodes, pods, namespaces and the pod templates of Deployments and
StatefulSets (Kopf indexers), which the control cycle reads, and the handlers that wake it
when any of them changes."""
from __future__ import annotations

import kopf

from quartermaster.operator.accounting import node_record, pod_record
from quartermaster.operator.wake import cycle_wanted
from quartermaster.operator.workloads import workload_template


@kopf.index("", "v1", "nodes")
def node_index(name, labels, spec, status, **_):
    return {name: node_record(name, labels, spec, status)}


@kopf.index("", "v1", "pods")
def pod_index(namespace, name, labels, spec, status, meta, **_):
    record = pod_record(namespace, name, labels, spec, status, meta)
    return {} if record is None else {(namespace, name): record}


@kopf.index("", "v1", "namespaces")
def namespace_index(name, labels, **_):
    return {name: dict(labels)}


@kopf.index("apps", "v1", "deployments")
def deployment_index(namespace, name, spec, status, meta, **_):
    record = workload_template("Deployment", namespace, name, int(meta.get("generation") or 0), spec, status,
                               meta.get("annotations"))
    return {record.key: record}


@kopf.index("apps", "v1", "statefulsets")
def statefulset_index(namespace, name, spec, status, meta, **_):
    record = workload_template("StatefulSet", namespace, name, int(meta.get("generation") or 0), spec, status,
                               meta.get("annotations"))
    return {record.key: record}


@kopf.on.event("", "v1", "nodes")
@kopf.on.event("", "v1", "pods")
@kopf.on.event("", "v1", "namespaces")
@kopf.on.event("apps", "v1", "deployments")
@kopf.on.event("apps", "v1", "statefulsets")
async def on_cluster_change(**_):
    await cycle_wanted.notify()
