"""In-memory indices of nodes, pods and namespaces (Kopf indexers), and a signal that
wakes the reconcilers when any of them changes."""
from __future__ import annotations

import asyncio

import kopf

from quartermaster.operator.accounting import node_record, pod_record


class ChangeSignal:
    """A counter that waiters compare against, so none misses a change while busy."""

    def __init__(self) -> None:
        self.generation = 0
        self._condition = asyncio.Condition()  # binds to the running loop on first use

    async def notify(self) -> None:
        async with self._condition:
            self.generation += 1
            self._condition.notify_all()

    async def wait_after(self, seen: int, timeout: float) -> None:
        """Return when the generation moves past `seen`, or after `timeout` seconds."""
        async with self._condition:
            try:
                await asyncio.wait_for(self._condition.wait_for(lambda: self.generation != seen), timeout)
            except asyncio.TimeoutError:
                pass


cluster_changed = ChangeSignal()


@kopf.index("", "v1", "nodes")
def node_index(name, labels, spec, status, **_):
    return {name: node_record(name, labels, spec, status)}


@kopf.index("", "v1", "pods")
def pod_index(namespace, name, labels, spec, status, **_):
    record = pod_record(namespace, name, labels, spec, status)
    return {} if record is None else {(namespace, name): record}


@kopf.index("", "v1", "namespaces")
def namespace_index(name, labels, **_):
    return {name: dict(labels)}


@kopf.on.event("", "v1", "nodes")
@kopf.on.event("", "v1", "pods")
@kopf.on.event("", "v1", "namespaces")
async def on_cluster_change(**_):
    await cluster_changed.notify()


def latest(index: kopf.Index) -> list:
    """One record per key: the index keeps a store of values per key."""
    return [value for store in index.values() for value in store]
