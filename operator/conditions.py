"""metav1.Condition lists: set one condition, keeping lastTransitionTime unless status flips;
and the times status records, read leniently."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import MutableMapping, Optional


RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # as Kubernetes writes times, to the second, in UTC


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime(RFC3339)


def from_rfc3339(text: str) -> float:
    return datetime.strptime(text, RFC3339).replace(tzinfo=timezone.utc).timestamp()


def seconds_since(text: Optional[str], now: float) -> Optional[float]:
    """Seconds from a time recorded in status (RFC3339) to `now`; None when there is none
    or it cannot be read (status can be edited by hand: a bad time must not crash every
    cycle). Each reader says what None means for it."""
    try:
        return None if text is None else now - from_rfc3339(text)
    except (TypeError, ValueError):
        return None


def restart_unreadable(record: MutableMapping, key: str, field: str, now: float,
                       waiting: str) -> list[tuple[str, str, bool]]:
    """Set `record[key]`, a time in status that `seconds_since` cannot read, to now, and
    the warning Event that says so (none when it is absent or readable): the wait it
    starts (`waiting`, as the message says it) then runs in full from now, neither skipped,
    as a time long ago would have it, nor endless, as a time never readable would."""
    text = record.get(key)
    if text is None or seconds_since(text, now) is not None:
        return []
    record[key] = rfc3339(now)
    return [("UnreadableTime", f"status.{field} {text!r} is not an RFC3339 time (such as {record[key]}): taken "
                               f"as now, so {waiting} from now", True)]


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime(RFC3339)


def changed(before: list[dict], after: list[dict]) -> list[dict]:
    """The conditions of `after` whose status or reason differs from `before` (or is new):
    the transitions an Event is filed for."""
    old = {c["type"]: (c["status"], c["reason"]) for c in before}
    return [c for c in after if old.get(c["type"]) != (c["status"], c["reason"])]


def as_event(condition: dict) -> tuple[str, str, bool]:
    """(reason, message, warning): a condition that is not True is a warning."""
    return condition["reason"], condition["message"], condition["status"] != "True"


def set_condition(conditions: list[dict], type_: str, status: bool, reason: str, message: str,
                  generation: int | None) -> list[dict]:
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != text
    condition = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now_rfc3339() if changed else previous["lastTransitionTime"],
        "observedGeneration": generation,
    }
    return [c for c in conditions if c.get("type") != type_] + [condition]
