"""The cycle's last stage: status patches only when something changed, and an Event for
every decision and transition the decide step named."""
from __future__ import annotations

import logging
from typing import Iterable, Mapping

from kubernetes.client import ApiException

from quartermaster.operator import events
from quartermaster.operator.kube import patch_status
from quartermaster.operator.observe import CustomObject

logger = logging.getLogger(__name__)


def _without_timestamps(status: Mapping) -> dict:
    conditions = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                  for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}


async def publish(plural: str, obj: CustomObject, status: Mapping, decided_events: Iterable[tuple[str, str, bool]],
                  written: dict[str, dict]) -> bool:
    """Patch the object's status if it differs from what was last written (or, after a
    restart, from what the object holds), then file its Events. A failed write is logged
    and retried by the next cycle, which still finds the difference; False then."""
    held = written.get(obj.uid, obj.status)
    try:
        if _without_timestamps(status) != _without_timestamps({k: held.get(k) for k in status}):
            await patch_status(plural, obj.name, obj.namespace, dict(status))
            written[obj.uid] = {**held, **status}
        for reason, message, warning in decided_events:
            await events.record(obj.reference, reason, message, warning=warning)
    except ApiException as error:
        logger.warning("%s %s: status or event not written (%s %s)", plural, obj.name, error.status, error.reason)
        return False
    return True


async def event(obj: CustomObject, reason: str, message: str, warning: bool = False) -> None:
    """An Event outside a decision (an action's failure); a failure to file it is logged."""
    await event_on(obj.reference, reason, message, warning)


async def event_on(reference: Mapping, reason: str, message: str, warning: bool = False) -> None:
    """An Event on any object (`reference`: apiVersion, kind, metadata name, namespace, uid);
    a failure to file it is logged."""
    try:
        await events.record(reference, reason, message, warning=warning)
    except ApiException as error:
        logger.warning("%s: event %s not filed (%s %s)", reference["metadata"]["name"], reason, error.status,
                       error.reason)
