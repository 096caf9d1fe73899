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
