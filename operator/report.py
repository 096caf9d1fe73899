"""The cycle's last stage: status patches only when something changed, and an Event for
every decision and transition the decide step named."""
from __future__ import annotations

import logging
from typing import Mapping

from kubernetes.client import ApiException

from quartermaster.operator import events
from quartermaster.operator.kube import patch_cluster_status
from quartermaster.operator.observe import CustomObject
from quartermaster.operator.resourcepool import PLURAL, PoolDecision

logger = logging.getLogger(__name__)


def _without_timestamps(status: Mapping) -> dict:
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                  for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}


async def publish_pool(pool: CustomObject, decision: PoolDecision, written: dict[str, dict]) -> None:
    """Patch the pool's status if it differs from what was last written (or, after a
    restart, from what the object holds), then file its Events. A failed write is logged
    and retried by the next cycle, which still finds the difference."""
    held = written.get(pool.uid, pool.status)
    status = decision.status
    try:
        if _without_timestamps(status) != _without_timestamps({k: held.get(k) for k in status}):
            await patch_cluster_status(PLURAL, pool.name, status)
            written[pool.uid] = {**held, **status}
        for reason, message, warning in decision.events:
            await events.record(pool.reference, reason, message, warning=warning)
    except ApiException as error:
        logger.warning("pool %s: status or event not written (%s %s)", pool.name, error.status, error.reason)
