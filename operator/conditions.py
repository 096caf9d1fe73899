"""metav1.Condition lists: set one condition, keeping lastTransitionTime unless status flips."""
from __future__ import annotations

from datetime import datetime, timezone


RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # as Kubernetes writes times, to the second, in UTC


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime(RFC3339)


def from_rfc3339(text: str) -> float:
    return datetime.strptime(text, RFC3339).replace(tzinfo=timezone.utc).timestamp()


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
