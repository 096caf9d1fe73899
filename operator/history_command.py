"""`quartermaster history`: the operator's decisions and actions, newest first.

Two sources: Events (those the operator files — on our objects, and any it files on the
objects it acts on — and any filed on our objects by others, such as Kopf's) and what our
objects keep in status (a ScalingPolicy's or Quota's lastAction and lastOomKill, a
SwapPlan's history and its execution's steps). `history(objects, events, ...)` is pure:
objects and Events in, entries out; `run` reads them from the cluster.
"""
from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping, Optional

from quartermaster.operator import cli_client
from quartermaster.operator.cli_client import render
from quartermaster.operator.events import COMPONENT
from quartermaster.operator.models import GROUP, KINDS

DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# SwapPlan phases that are a failure to notice.
WARNING_PHASES = ("RolledBack", "Failed")


def duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1h30m`, `7d` (kubectl's --since, with days)."""
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m, 2h, 1h30m or 7d")
    return timedelta(seconds=sum(float(n) * UNIT_SECONDS[u] for n, u in parts))


def subject(text: str) -> tuple[str, str]:
    """KIND/NAME as kubectl writes it: (kind word, name)."""
    kind, _, name = text.partition("/")
    if not kind or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r} is not KIND/NAME, such as spol/web or deployment/web")
    return kind, name


def _time(text: Optional[str]) -> Optional[datetime]:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):  # absent, or not RFC3339: the entry has no time to sort by
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _entry(when: Optional[str], kind: str, namespace: Optional[str], name: str, source: str,
           reason: str, message: str, warning: bool = False, target: Optional[str] = None) -> Optional[dict]:
    moment = _time(when)
    if moment is None:
        return None
    return {"time": moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": kind,
            "namespace": namespace or None, "name": name, "source": source,
            "type": "Warning" if warning else "Normal", "reason": reason, "message": message, "target": target}


def _target(obj: Mapping) -> Optional[str]:
    ref = (obj.get("spec") or {}).get("targetRef") or {}
    return f"{ref['kind']}/{ref['name']}" if ref.get("kind") and ref.get("name") else None


def _ours(involved: Mapping) -> bool:
    return (involved.get("apiVersion") or "").split("/")[0] == GROUP


def event_entries(events: Iterable[Mapping], targets: Mapping[tuple, str]) -> list[dict]:
    """The Events the operator filed, and any filed on our objects."""
    found = []
    for event in events:
        involved = event.get("involvedObject") or {}
        by_operator = COMPONENT in ((event.get("source") or {}).get("component"), event.get("reportingComponent"))
        if not (by_operator or _ours(involved)):
            continue
        key = (involved.get("kind"), involved.get("namespace") or None, involved.get("name"))
        when = (event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
                or (event.get("metadata") or {}).get("creationTimestamp"))
        count = event.get("count") or 1
        message = (event.get("message") or "") + (f" (×{count})" if count > 1 else "")
        entry = _entry(when, key[0] or "", key[1], key[2] or "", "Event", event.get("reason") or "",
                       message, event.get("type") == "Warning", targets.get(key))
        if entry:
            found.append(entry)
    return found


def status_entries(obj: Mapping) -> list[dict]:
    """What one of our objects keeps of its past in status."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    kind, namespace, name, target = obj.get("kind") or "", meta.get("namespace"), meta.get("name") or "", _target(obj)

    def entry(when, field, reason, message, warning=False):
        return _entry(when, kind, namespace, name, f"status.{field}", reason, message, warning, target)

    found = []
    if status.get("lastAction"):
        found.append(entry(status["lastAction"].get("time"), "lastAction", "Action", status["lastAction"].get("action", "")))
    if status.get("lastOomKill"):
        oom = status["lastOomKill"]
        found.append(entry(oom.get("time"), "lastOomKill", "OOMKilled",
                           f"a pod was OOMKilled; memory raised from its peak of {oom.get('podPeak')}", True))
    if status.get("lastSpotRefusal"):
        refusal = status["lastSpotRefusal"]
        found.append(entry(refusal.get("time"), "lastSpotRefusal", "SpotRefused",
                           f"{refusal.get('cause', '')}: new nodes on-demand for spotRetrySeconds after it", True))
    if status.get("lastEvictions"):
        evictions = status["lastEvictions"]
        pods = ", ".join(f"{p.get('pod')} {p.get('outcome', '')}".strip() for p in evictions.get("pods") or [])
        found.append(entry(evictions.get("time"), "lastEvictions", "PressureEvictions",
                           f"a round of evictions at Emergency: {pods or 'no pod'}", True))
    for past in status.get("history") or []:
        plan = f" (plan {past['planId']})" if past.get("planId") else ""
        note = f": {past['message']}" if past.get("message") else ""
        found.append(entry(past.get("time"), "history", past.get("phase", ""),
                           f"{past.get('swaps', 0)} swaps{plan}{note}", past.get("phase") in WARNING_PHASES))
    execution = status.get("execution") or {}
    for step in execution.get("steps") or []:
        found.append(entry(step.get("since"), "execution", f"Step{step.get('state', '')}",
                           f"{step.get('workload')} ({execution.get('direction', 'Forward')}, plan {execution.get('planId')})"))
    return [e for e in found if e]


def _kind_matches(word: str, kind: str) -> bool:
    word, lowered = word.lower(), kind.lower()
    if word in (lowered, lowered + "s", lowered + "es"):
        return True
    model = next((m for m in KINDS if m.kind == kind), None)
    return model is not None and word in (model.plural, *model.short_names)


def _about(entry: Mapping, wanted: tuple[str, str]) -> bool:
    word, name = wanted
    if entry["name"] == name and _kind_matches(word, entry["kind"]):
        return True
    target_kind, _, target_name = (entry.get("target") or "").partition("/")
    return target_name == name and _kind_matches(word, target_kind)


def history(objects: Mapping[str, list[Mapping]], events: Iterable[Mapping], now: datetime,
            since: Optional[timedelta] = None, about: Optional[tuple[str, str]] = None,
            namespace: Optional[str] = None) -> list[dict]:
    """Entries newest first: from `since` ago on, about `about` (KIND word, name; an object
    or a policy's target), of cluster-scoped objects and of `namespace`'s (all when None)."""
    everything = [o for items in objects.values() for o in items]
    targets = {(o.get("kind"), (o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name")):
               _target(o) for o in everything if _target(o)}
    entries = event_entries(events, targets) + [e for o in everything for e in status_entries(o)]
    cutoff = None if since is None else (now - since).strftime("%Y-%m-%dT%H:%M:%SZ")
    chosen = [e for e in entries
              if (cutoff is None or e["time"] >= cutoff)
              and (about is None or _about(e, about))
              and (namespace is None or e["namespace"] in (None, namespace))]
    return sorted(chosen, key=lambda e: e["time"], reverse=True)


def _age(time: str, now: datetime) -> str:
    seconds = max(0, int((now - _time(time)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(entries: Iterable[Mapping], now: datetime) -> list[list[str]]:
    rows = [["AGE", "NAMESPACE", "OBJECT", "TYPE", "REASON", "SOURCE", "MESSAGE"]]
    rows += [[_age(e["time"], now), e["namespace"] or "", f"{e['kind']}/{e['name']}", e["type"], e["reason"],
              e["source"], e["message"]] for e in entries]
    return rows


def read_events(api, namespace: Optional[str]) -> list[dict]:
    """The Events as the apiserver sends them (JSON, as kubectl reads them). In a namespace,
    also "default"'s, where the Events of cluster-scoped objects are."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    if namespace is None:
        answers = [core.list_event_for_all_namespaces(_preload_content=False)]
    else:
        answers = [core.list_namespaced_event(n, _preload_content=False) for n in dict.fromkeys((namespace, "default"))]
    return [item for answer in answers for item in json.loads(answer.data).get("items") or []]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("object", nargs="?", type=subject, metavar="KIND/NAME",
                        help="only this object's entries (spol/web, rpool/general, or a policy's target: deployment/web)")
    parser.add_argument("--for", dest="about", type=subject, metavar="KIND/NAME", help="the same as KIND/NAME")
    parser.add_argument("--since", type=duration, help="only entries this recent: 90s, 15m, 2h, 1h30m, 7d")
    cli_client.add_cluster_arguments(parser)
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def run(options: argparse.Namespace) -> int:
    def show() -> int:
        api, namespace = cli_client.api_client(options), cli_client.namespace(options)
        now = datetime.now(timezone.utc)
        entries = history(cli_client.list_objects(api, namespace), read_events(api, namespace), now,
                          options.since, options.about or options.object, namespace)
        if options.output == "table":
            print(render(table(entries, now)) if entries else "No decisions or actions recorded.")
        else:
            print(cli_client.dump(entries, options.output), end="")
        return 0
    return cli_client.guarded("history", show)
