"""ResourcePool: select nodes and member workloads, and keep capacity/requested/free in status.

One daemon per pool recomputes from the in-memory indices whenever the cluster or the
pool changes, and at least every `resync_seconds`; it writes status only when it changed,
and records an Event whenever the Ready condition changes (status or reason).
"""
from __future__ import annotations

import asyncio
from typing import Optional

import kopf
from pydantic import ValidationError

from quartermaster.operator import events, settings
from quartermaster.operator.accounting import summarise
from quartermaster.operator.cluster_index import cluster_changed, latest
from quartermaster.operator.conditions import set_condition
from quartermaster.operator.kube import patch_cluster_status
from quartermaster.operator.models import GROUP, VERSION, ResourcePool, ResourcePoolSpec
from quartermaster.operator.quantities import format_resources

PLURAL = ResourcePool.plural


def validation_message(error: ValidationError) -> str:
    return "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())


def pool_status(spec: dict, generation: int, conditions: list[dict], nodes: list, pods: list,
                namespace_labels: dict[str, dict[str, str]]) -> dict:
    """The pool's new status from its spec and the cluster's current records."""
    try:
        parsed = ResourcePoolSpec.model_validate(spec)
    except ValidationError as error:
        conditions = set_condition(conditions, "Ready", False, "InvalidSpec",
                                   validation_message(error), generation)
        return {"observedGeneration": generation, "conditions": conditions}
    summary = summarise(parsed, nodes, pods, namespace_labels)
    if summary.nodes == 0 and parsed.fixed_capacity is None:
        conditions = set_condition(conditions, "Ready", False, "NoNodesSelected",
                                   "no schedulable node matches the pool's node selector", generation)
    else:
        conditions = set_condition(conditions, "Ready", True, "Reconciled",
                                   f"{summary.nodes} nodes, {summary.members} member pods", generation)
    return {
        "observedGeneration": generation,
        "capacity": format_resources(summary.capacity),
        "requested": format_resources(summary.requested),
        "free": format_resources(summary.free),
        "pressure": {r: level.value for r, level in summary.pressure.items()},
        "nodes": summary.nodes,
        "members": summary.members,
        "conditions": conditions,
    }


def ready_transition(before: list[dict], after: list[dict]) -> Optional[dict]:
    """The new Ready condition if its status or reason differs from before."""
    def ready(conditions):
        return next((c for c in conditions if c["type"] == "Ready"), None)

    old, new = ready(before), ready(after)
    if new is None or (old and (old["status"], old["reason"]) == (new["status"], new["reason"])):
        return None
    return new


def _listing(amounts: dict[str, str]) -> str:
    return ", ".join(f"{resource} {amount}" for resource, amount in amounts.items())


def _without_timestamps(status: dict) -> dict:
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                  for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}


def spec_not_yet_observed(body, **_) -> bool:
    """True unless the status already reflects the spec: the daemons' own status patches
    come back as watch events with `observedGeneration == generation`, and must not wake
    them again. A spec change (selectors included) raises `generation`, so it passes; a new
    pool has no status yet, so it passes too."""
    generation = body.get("metadata", {}).get("generation")
    return generation is None or (body.get("status") or {}).get("observedGeneration") != generation


@kopf.on.event(GROUP, VERSION, PLURAL, when=spec_not_yet_observed)
async def on_pool_event(**_):
    await cluster_changed.notify()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=5)
async def reconcile_pool(name, body, node_index: kopf.Index, pod_index: kopf.Index,
                         namespace_index: kopf.Index, logger, **_):
    config = settings.current
    written: dict = dict(body.get("status") or {})
    while True:
        seen = cluster_changed.generation
        namespace_labels = {ns: labels for ns, store in namespace_index.items() for labels in store}
        before = list(written.get("conditions") or [])
        status = pool_status(dict(body.get("spec") or {}), body["metadata"].get("generation", 0),
                             before, latest(node_index), latest(pod_index), namespace_labels)
        if _without_timestamps(status) != _without_timestamps({k: written.get(k) for k in status}):
            await patch_cluster_status(PLURAL, name, status)
            written = {**written, **status}
            logger.debug("status written: %s", status)
        changed = ready_transition(before, status["conditions"])
        if changed is not None and changed["status"] == "True":
            await events.record(body, "Ready", (
                f"pool ready with {status['nodes']} nodes and {status['members']} member pods: "
                f"capacity {_listing(status['capacity'])}; requested {_listing(status['requested'])}"))
        elif changed is not None:
            await events.record(body, changed["reason"], changed["message"], warning=True)
        await cluster_changed.wait_after(seen, config.resync_seconds)
        await asyncio.sleep(config.debounce_seconds)
