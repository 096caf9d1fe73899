"""A ResourcePool's pressure evictions in its decide step: which pods, when, and what is
recorded (figures in, status, Events and the action out; no I/O)."""
import numpy as np
import pytest
from kubernetes.client import ApiException

from quartermaster.operator.accounting import pod_record, summarise
from quartermaster.operator.conditions import rfc3339
from quartermaster.operator.models import ResourcePoolStatus
from quartermaster.operator.observe import custom_object
from quartermaster.operator.resourcepool import (ResourceFigures, UsageFigures, decide, evictions_made,
                                                 parse_spec)
from quartermaster.providers.evictions import EVICTED, GONE, REFUSED, outcome_of

NOW = 1_800_000_000.0
STEP = 60
LOW, NORMAL, CRITICAL = -100_000, 0, 1_000_000
ON = {"evictAtEmergency": True, "cooldownSeconds": 120, "maxEvictionsPerRound": 3}


def pool_spec(actions=ON):
    return {"fixedCapacity": {"cpu": "10", "memory": "100Gi", "pods": "100"},
            "workloads": {"namespaces": ["ns"]}, "pressureActions": actions}


def pod(name, cpu, priority, owner=("ReplicaSet", "rs"), node="n1", deleting=False, class_name=None):
    meta = {"uid": f"uid-{name}", "ownerReferences": [] if owner is None else
            [{"kind": owner[0], "name": owner[1], "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    spec = {"containers": [{"name": "c", "resources": {"requests": {"cpu": str(cpu), "memory": "1Gi"}}}],
            "priority": priority, **({"nodeName": node} if node else {}),
            **({"priorityClassName": class_name} if class_name else {})}
    return pod_record("ns", name, {}, spec, {"phase": "Running"}, meta)


# 9.7 of 10 cores requested: Emergency (95 %) on requests. Usage is low, so requests set it.
PODS = [
    pod("low-a", 2, LOW, ("ReplicaSet", "low-a-rs"), class_name="quartermaster-low"),
    pod("low-b", 1, LOW, ("ReplicaSet", "low-b-rs")),
    pod("normal", 4, NORMAL),
    pod("critical", 0.2, CRITICAL),
    pod("daemon", 0.5, LOW - 1, ("DaemonSet", "agent")),
    pod("mirror", 0.5, LOW - 1, ("Node", "n1")),
    pod("bare", 0.5, LOW - 1, owner=None),
    pod("going", 0.5, LOW - 1, ("ReplicaSet", "going-rs"), deleting=True),
    pod("pending", 0.5, LOW - 1, ("ReplicaSet", "pending-rs"), node=None),
]


def usage(pods, missing=()):
    stamps = NOW - STEP * np.arange(59, -1, -1)
    figures = {"cpu": ResourceFigures(used=2.0, history=np.full(stamps.size, 2.0), forecast=np.full(6, 2.0),
                                      tier="robust"),
               "memory": ResourceFigures(used=2.0**30, history=np.full(stamps.size, 2.0**30),
                                         forecast=np.full(6, 2.0**30), tier="robust")}
    per_pod = {p.owner: {"cpu": 0.1, "memory": 2.0**20} for p in pods}
    return UsageFigures(figures, stamps, STEP, NOW, tuple(missing), per_pod)


def decided(spec=None, pods=PODS, figures="fresh", previous=None, problem=None, now=NOW):
    body = custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ResourcePool",
                          "metadata": {"name": "p", "uid": "u", "generation": 1}, "spec": spec or pool_spec()})
    parsed = parse_spec(body)
    assert not isinstance(parsed, str), parsed
    summary = summarise(parsed, [], pods, {})
    return decide(body, parsed, summary, 2, usage(pods) if figures == "fresh" else figures, problem,
                  previous or {}, now)


def condition(status, kind="Evicting"):
    return next((c for c in status["conditions"] if c["type"] == kind), None)


def test_at_emergency_the_lowest_priority_pods_are_recorded_then_evicted_until_below_critical():
    decision = decided()
    assert decision.status["pressure"]["cpu"] == "Emergency"
    # low-a (2 cores, the larger of the low pods): 9.7 - 2 = 7.7, 77 %, below Critical. The
    # lower-priority pods are a DaemonSet's, a mirror pod, one with no controller, one
    # going already and one not on a node: none of them may be evicted.
    assert decision.action.pods == (("ns", "low-a", "uid-low-a"),)
    record = decision.status["lastEvictions"]
    assert record == {"time": rfc3339(NOW), "pods": [
        {"pod": "ns/low-a", "priority": LOW, "priorityClassName": "quartermaster-low", "resource": "cpu",
         "use": "2", "outcome": "Decided"}]}
    evicting = condition(decision.status)
    assert (evicting["status"], evicting["reason"]) == ("True", "PodsEvicted")
    assert "ns/low-a" in evicting["message"] and "then cpu 77%, below Critical" in evicting["message"]
    ResourcePoolStatus.model_validate(decision.status)


def test_off_by_default_nothing_is_evicted_and_no_condition_is_set():
    for spec in (pool_spec(actions={}), pool_spec(actions={**ON, "evictAtEmergency": False})):
        decision = decided(spec)
        assert decision.status["pressure"]["cpu"] == "Emergency"
        assert decision.action is None and "lastEvictions" not in decision.status
        assert condition(decision.status) is None


def test_never_above_the_priority_ceiling_and_the_limit_holds():
    heavy = [pod(f"low-{i}", 1.5, LOW, ("ReplicaSet", f"rs{i}")) for i in range(5)] + [pod("normal", 2.5, NORMAL)]
    # 10 of 10 cores: evicting 1.5 at a time, at most 2 a round: 7 cores (70 %)
    decision = decided(pool_spec({**ON, "maxEvictionsPerRound": 2}), pods=heavy)
    assert [name for _, name, _ in decision.action.pods] == ["low-0", "low-1"]
    # only normal pods left above the ceiling of 0: none may be evicted, and the condition says so
    decision = decided(pods=[pod("normal", 9.8, NORMAL), pod("critical", 0.1, CRITICAL)])
    assert decision.action is None
    evicting = condition(decision.status)
    assert (evicting["status"], evicting["reason"]) == ("False", "NoCandidates")
    # a ceiling above normal evicts the normal pod, never the critical one
    decision = decided(pool_spec({**ON, "evictBelowPriority": CRITICAL}),
                       pods=[pod("normal", 9.8, NORMAL), pod("critical", 0.1, CRITICAL)])
    assert [name for _, name, _ in decision.action.pods] == ["normal"]


def test_nothing_is_evicted_on_stale_or_missing_figures():
    unavailable = decided(figures=None, problem=("PrometheusTimeout", "no answer within 5s"))
    missing = decided(figures=usage(PODS, missing=("ns/Deployment/low-a",)))
    for decision in (unavailable, missing):
        assert decision.status["pressure"]["cpu"] == "Emergency"
        assert decision.action is None and "lastEvictions" not in decision.status
        evicting = condition(decision.status)
        assert (evicting["status"], evicting["reason"]) == ("False", "MetricsNotFresh")
    assert "no answer within 5s" in condition(unavailable.status)["message"]
    assert "ns/Deployment/low-a" in condition(missing.status)["message"]


def test_a_round_waits_for_the_cooldown_from_the_recorded_one_as_after_a_restart():
    first = decided()
    # a restarted operator knows only the object's status: the round recorded there holds it
    waiting = decided(previous=first.status, now=NOW + 119)
    assert waiting.action is None and "lastEvictions" not in waiting.status
    evicting = condition(waiting.status)
    assert (evicting["status"], evicting["reason"]) == ("True", "EvictionCooldown")
    assert "119s ago" in evicting["message"]
    again = decided(previous=first.status, now=NOW + 120)
    assert again.action is not None and again.status["lastEvictions"]["time"] == rfc3339(NOW + 120)


def test_an_unreadable_round_time_starts_the_cooldown_from_now_and_says_so():
    first = decided()
    # the schema holds the record's shape, not what its time says
    edited = {**first.status, "lastEvictions": {**first.status["lastEvictions"], "time": "yesterday"}}
    held = decided(previous=edited, now=NOW + 1)
    assert held.action is None and condition(held.status)["reason"] == "EvictionCooldown", \
        "not taken as long ago: no round before a cooldown has passed"
    assert held.status["lastEvictions"] == {**first.status["lastEvictions"], "time": rfc3339(NOW + 1)}, \
        "written back as now, so the cooldown ends"
    assert any(reason == "UnreadableTime" and "lastEvictions.time 'yesterday'" in message and warning
               for reason, message, warning in held.events)
    assert decided(previous={**edited, **held.status}, now=NOW + 121).action is not None


def test_a_pod_whose_eviction_was_refused_goes_after_the_others_next_round():
    first = decided()
    status, _, _ = evictions_made("p", first.status, {"ns/low-a": REFUSED})
    later = decided(previous=status, now=NOW + 120)
    assert later.action.pods == (("ns", "low-b", "uid-low-b"), ("ns", "low-a", "uid-low-a"))


def test_a_calm_pool_with_evictions_on_says_so_without_a_warning():
    decision = decided(pods=[pod("low-a", 2, LOW)])
    evicting = condition(decision.status)
    assert (evicting["status"], evicting["reason"]) == ("False", "NoEmergency")
    assert ("NoEmergency", evicting["message"], False) in decision.events


def test_outcomes_go_into_status_with_an_event_per_pod():
    decision = decided(pool_spec({**ON, "evictBelowPriority": CRITICAL}),
                       pods=[pod("low-a", 0.5, LOW, class_name="quartermaster-low"), pod("low-b", 0.5, LOW),
                             pod("gone", 0.5, LOW + 1), pod("broken", 0.2, LOW + 2), pod("normal", 8, NORMAL)])
    # 9.7 cores: three pods of 500m to get below 8.5
    assert [name for _, name, _ in decision.action.pods] == ["low-a", "low-b", "gone"]
    failure = ApiException(status=403, reason="Forbidden")
    status, events, pod_events = evictions_made(
        "p", decision.status, {"ns/low-a": EVICTED, "ns/low-b": REFUSED, "ns/gone": failure})
    assert [e["outcome"] for e in status["lastEvictions"]["pods"]] == ["Evicted", "Refused", "Failed"]
    assert [(reason, warning) for reason, _, warning in events] == [
        ("PodEvicted", True), ("EvictionRefused", False), ("ActionFailed", True)]
    assert events[0][1] == ("evicted ns/low-a (priority -100000, quartermaster-low) for cpu at Emergency, "
                            "of which it held 500m")
    assert "PodDisruptionBudget" in events[1][1] and "403 Forbidden" in events[2][1]
    [(target, reason, message, warning)] = pod_events
    assert (target, reason, warning) == ("ns/low-a", "PressureEviction", True) and "ResourcePool p" in message
    status, events, _ = evictions_made("p", decision.status, {"ns/low-a": EVICTED, "ns/low-b": EVICTED,
                                                              "ns/gone": GONE})
    assert status["lastEvictions"]["pods"][2]["outcome"] == "Gone" and len(events) == 2
    ResourcePoolStatus.model_validate(status)


def test_actions_total_counts_each_answer_by_the_outcome_status_records():
    from quartermaster.operator.cycle import EVICTION_RESULTS
    answers = [EVICTED, REFUSED, GONE, ApiException(status=403, reason="Forbidden")]
    # a pod gone already is no action taken
    assert [EVICTION_RESULTS.get(outcome_of(a)) for a in answers] == ["applied", "refused", None, "failed"]


def test_a_pod_without_a_controller_is_never_evicted():
    decision = decided(pods=[pod("bare", 9.8, LOW, owner=None)])
    assert decision.action is None and condition(decision.status)["reason"] == "NoCandidates"


@pytest.mark.parametrize("actions, field", [({"evictBelowPriority": 1_000_001}, "evictBelowPriority"),
                                            ({"maxEvictionsPerRound": 0}, "maxEvictionsPerRound"),
                                            ({"cooldownSeconds": 5}, "cooldownSeconds"),
                                            ({"resources": ["disk"]}, "resources")])
def test_bad_settings_name_their_field(actions, field):
    body = custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ResourcePool",
                          "metadata": {"name": "p", "uid": "u", "generation": 1},
                          "spec": {"pressureActions": actions}})
    assert f"spec.pressureActions.{field}" in parse_spec(body)
