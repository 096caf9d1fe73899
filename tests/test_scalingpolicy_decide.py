"""The ScalingPolicy's decide step and who owns a target: figures in, status, Events and an
HPA's bounds out (no I/O)."""
import numpy as np

from quartermaster.operator.observe import custom_object
from quartermaster.operator.scalingpolicy import (HpaRecord, Ownership, PolicyFigures, SignalFigures, decide,
                                                  hpa_record, ownership, parse_spec, vpa_record)
from quartermaster.operator.workloads import ContainerRequests, WorkloadKey, WorkloadTemplate

NOW = 1_800_000_000.0


def policy(name="web", uid="u1", **spec):
    return custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ScalingPolicy",
                          "metadata": {"name": name, "namespace": "shop", "uid": uid, "generation": 2},
                          "spec": {"targetRef": {"kind": "Deployment", "name": "web"},
                                   "signals": [{"type": "cpu", "target": "500m"}], "maxReplicas": 10,
                                   "scaleUp": {"step": 10, "cooldownSeconds": 0}, **spec}})


def figures(demand=2.0, peak=4.0, confidence=0.9, replicas=2):
    forecast = np.full(12, demand)
    forecast[1] = peak  # within the default 15-minute horizon (3 steps)
    return PolicyFigures(replicas, (SignalFigures("cpu", demand, forecast, confidence, 0.5),), 300, NOW)


def decided(obj, figs, owner=Ownership("web"), problem=None, previous=None):
    return decide(obj, parse_spec(obj), figs, problem, owner, None, previous or {}, NOW)


def test_a_trusted_forecast_raises_the_floor_ahead_of_demand():
    decision = decided(policy(mode="Predictive"), figures(demand=2.0, peak=4.0))
    assert decision.status["recommendation"]["replicas"] == 8, "4 cores at the peak / 0.5 per replica"
    assert decision.action.min_replicas == 8 and decision.action.max_replicas == 10
    assert "8 replicas" in decision.status["reasoning"] and decision.status["currentReplicas"] == 2
    assert decision.status["lastAction"]["action"].startswith("HPA shop/web: minReplicas 8")


def test_with_the_median_the_floor_is_planned_inside_the_forecasts_band():
    forecast = np.full(12, 2.0)
    forecast[1] = 4.0
    median = np.full(12, 2.0)  # 4 replicas at the median's peak, 8 at the p90's
    signal = SignalFigures("cpu", 2.0, forecast, 0.9, 0.5, median=median)
    decision = decided(policy(mode="Predictive"), PolicyFigures(2, (signal,), 300, NOW))
    assert decision.status["recommendation"]["replicas"] == 6, "half way from 4 to 8"
    assert "p50" in decision.status["reasoning"] and "p90" in decision.status["reasoning"]


def test_below_the_confidence_threshold_it_recommends_on_now_says_so_and_does_not_act():
    decision = decided(policy(mode="Predictive"), figures(demand=2.0, peak=4.0, confidence=0.3))
    assert decision.status["recommendation"]["replicas"] == 4
    assert "confidence" in decision.status["reasoning"]
    assert decision.action is None
    ready = next(c for c in decision.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "LowConfidence" and "0.30 below 0.60" in ready["message"]
    reactive = decided(policy(mode="Reactive"), figures(demand=2.0, peak=4.0, confidence=0.3))
    assert reactive.action.min_replicas == 4, "a Reactive policy does not depend on the forecast"


def test_no_action_on_missing_metrics_or_in_off_mode_or_when_the_hpa_holds_the_bounds():
    down = decided(policy(mode="Predictive"), None, problem=("PrometheusUnreachable", "cannot connect"))
    assert down.action is None and "recommendation" not in down.status
    assert {c["type"]: c["reason"] for c in down.status["conditions"]}["Ready"] == "WaitingForMetrics"
    off = decided(policy(mode="Predictive", updateMode="Off"), figures())
    assert off.action is None and off.status["recommendation"]["replicas"] == 8
    held = HpaRecord("shop", "web", "Deployment", "web", "web", False, 8, 10)
    assert decided(policy(mode="Predictive"), figures(), owner=Ownership("web", held)).action is None


def test_one_owner_per_target():
    first, second = policy("a-first", "u1", mode="Predictive"), policy("b-second", "u2", mode="Reactive")
    specs = [(first, parse_spec(first)), (second, parse_spec(second))]
    assert ownership(first, specs[0][1], specs, []).conflict is None
    assert "ScalingPolicy shop/a-first" in ownership(second, specs[1][1], specs, []).conflict
    users = HpaRecord("shop", "theirs", "Deployment", "web", None, False, 1, 3)
    assert "HorizontalPodAutoscaler shop/theirs" in ownership(first, specs[0][1], specs[:1], [users]).conflict
    adoptable = HpaRecord("shop", "theirs", "Deployment", "web", None, True, 1, 3)
    assert ownership(first, specs[0][1], specs[:1], [adoptable]) == Ownership("theirs", adoptable)
    conflicted = decided(second, figures(), owner=ownership(second, specs[1][1], specs, []))
    assert conflicted.action is None and conflicted.events[0][0] == "Conflict"


def test_one_owner_per_signal_across_hpas_vpas_and_vertical_policies():
    memory = [{"type": "memory"}]
    vertical_cpu, vertical_memory = policy("a-vert", "u1", mode="Vertical"), policy("a-vert", "u1", mode="Vertical",
                                                                                  signals=memory)
    horizontal = policy("b-hpa", "u2", mode="Predictive")
    hpa_on_cpu = hpa_record("shop", "theirs", {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}, {}, {})
    hpa_on_rps = hpa_record("shop", "theirs", {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "metrics": [
        {"type": "Pods", "pods": {"metric": {"name": "rps"}}}]}, {}, {})
    assert hpa_on_cpu.resources == {"cpu"}, "an HPA without metrics scales on cpu"
    alone = [(vertical_cpu, parse_spec(vertical_cpu))]
    assert "HorizontalPodAutoscaler shop/theirs" in ownership(vertical_cpu, alone[0][1], alone, [hpa_on_cpu]).conflict
    assert ownership(vertical_cpu, alone[0][1], alone, [hpa_on_rps]).conflict is None, "requests do not move rps"
    memory_only = [(vertical_memory, parse_spec(vertical_memory))]
    assert ownership(vertical_memory, memory_only[0][1], memory_only, [hpa_on_cpu]).conflict is None

    both = alone + [(horizontal, parse_spec(horizontal))]
    assert "ScalingPolicy shop/a-vert" in ownership(horizontal, both[1][1], both, []).conflict
    ours = HpaRecord("shop", "b-hpa", "Deployment", "web", "b-hpa", False, 1, 10)
    assert ownership(vertical_cpu, both[0][1], both, [ours]).conflict is None, "a sibling's HPA is the sibling"

    vpa = {"targetRef": {"kind": "Deployment", "name": "web"}}
    recommending = vpa_record("shop", "vpa", {**vpa, "updatePolicy": {"updateMode": "Off"}})
    cpu_only = vpa_record("shop", "vpa", {**vpa, "resourcePolicy": {"containerPolicies": [
        {"containerName": "*", "controlledResources": ["cpu"]}]}})
    horizontal_alone = both[1:]
    assert ownership(horizontal, horizontal_alone[0][1], horizontal_alone, [], [recommending]).conflict is None
    conflict = ownership(horizontal, horizontal_alone[0][1], horizontal_alone, [], [vpa_record("shop", "vpa", vpa)])
    assert "VerticalPodAutoscaler shop/vpa" in conflict.conflict and "cpu" in conflict.conflict
    assert ownership(vertical_memory, memory_only[0][1], memory_only, [], [cpu_only]).conflict is None
    stepped_back = decided(vertical_cpu, figures(), owner=ownership(vertical_cpu, alone[0][1], alone, [hpa_on_cpu]))
    assert stepped_back.action is None and stepped_back.events[0][0] == "Conflict"


def test_a_restarted_operator_keeps_the_cooldown_of_the_last_recorded_action():
    cooling = policy(mode="Reactive", scaleUp={"step": 10, "cooldownSeconds": 600})
    # NOW is 2027-01-15T08:00:00Z: five minutes after the recorded action
    recorded = {"lastAction": {"action": "HPA shop/web: minReplicas 3", "time": "2027-01-15T07:55:00Z"}}
    after_restart = decided(cooling, figures(demand=2.0), previous=recorded)
    assert after_restart.action is None and after_restart.status["recommendation"]["replicas"] == 2
    fresh = decided(cooling, figures(demand=2.0))
    assert fresh.action.min_replicas == 4


GIB = 2.0**30


def vertical_figures(template=None, pods=(), oom_killed=False, memory_peak=4 * GIB):
    signals = (SignalFigures("cpu", 2.0, np.full(12, 2.0), 0.9, None, recent_peak=2.2),
               SignalFigures("memory", 3 * GIB, np.full(12, 3 * GIB), 0.9, None, recent_peak=memory_peak))
    return PolicyFigures(2, signals, 300, NOW, template=template, pods=pods, oom_killed=oom_killed)


def template(*containers, rolled_out=True):
    return WorkloadTemplate(WorkloadKey("shop", "Deployment", "web"), 2,
                            tuple(ContainerRequests(name, requests) for name, requests in containers), rolled_out)


def reason(decision):
    return next(c for c in decision.status["conditions"] if c["type"] == "Ready")["reason"]


def test_a_vertical_policy_in_off_mode_recommends_per_pod_and_per_container_requests_only():
    decision = decided(policy(mode="Vertical", updateMode="Off"),
                       vertical_figures(template(("app", {"cpu": 0.2, "memory": GIB}))))
    requests = decision.status["recommendation"]["requests"]
    assert requests["cpu"] == "1100m", "1 core per pod forecast, plus the 10 % buffer"
    assert requests["memory"] == "2253Mi", "never below the recent peak per pod (2 GiB) plus the buffer"
    assert decision.status["recommendation"]["containers"] == [{"name": "app", "requests": requests}]
    assert decision.action is None and reason(decision) == "RecommendOnly"


def test_auto_sets_the_template_sharing_the_pod_among_containers_as_their_requests_are_now():
    decision = decided(policy(mode="Vertical"), vertical_figures(template(
        ("app", {"cpu": 0.3, "memory": 3 * GIB}), ("proxy", {"cpu": 0.1, "memory": GIB}))))
    assert reason(decision) == "Updating"
    action = decision.action
    assert (action.kind, action.name) == ("Deployment", "web")
    shares = {c.name: c.requests for c in action.containers}
    assert shares["app"]["cpu"] == 0.825 and shares["proxy"]["cpu"] == 0.275, "1.1 cores split 3:1"
    assert shares["app"]["memory"] == 1690 * 2**20 and shares["proxy"]["memory"] == 564 * 2**20
    assert decision.status["lastAction"]["action"].startswith("Deployment shop/web pod template: app: cpu 825m")


def test_auto_leaves_requests_within_the_tolerance_and_waits_for_a_rollout_to_finish():
    close = template(("app", {"cpu": 1.05, "memory": 2253 * 2**20}))
    assert decided(policy(mode="Vertical"), vertical_figures(close)).action is None
    assert reason(decided(policy(mode="Vertical"), vertical_figures(close))) == "UpToDate"
    rolling = template(("app", {"cpu": 0.2, "memory": GIB}), rolled_out=False)
    assert reason(decided(policy(mode="Vertical"), vertical_figures(rolling))) == "RollingOut"
    assert decided(policy(mode="Vertical"), vertical_figures(None)).action is None


def test_a_decrease_waits_for_the_scale_down_cooldown_after_the_last_change():
    oversized = template(("app", {"cpu": 4.0, "memory": 8 * GIB}))
    recorded = {"lastAction": {"action": "Deployment shop/web pod template", "time": "2027-01-15T07:55:00Z"}}
    cooling = decided(policy(mode="Vertical", scaleDown={"cooldownSeconds": 600}), vertical_figures(oversized),
                      previous=recorded)
    assert cooling.action is None and reason(cooling) == "CoolingDown"
    assert decided(policy(mode="Vertical", scaleDown={"cooldownSeconds": 60}), vertical_figures(oversized),
                   previous=recorded).action is not None


def test_an_oomkill_raises_memory_at_once_and_keeps_it_raised_after_the_pods_are_replaced():
    current = template(("app", {"cpu": 1.1, "memory": 2253 * 2**20}))
    killed = decided(policy(mode="Vertical"), vertical_figures(current, oom_killed=True))
    memory = {c.name: c.requests for c in killed.action.containers}["app"]["memory"]
    assert memory == 2458 * 2**20, "2 GiB peak per pod x 1.2 (more than +100Mi)"
    assert killed.status["lastOomKill"] == {"time": "2027-01-15T08:00:00Z", "podPeak": "2Gi"}
    replaced = template(("app", {"cpu": 1.1, "memory": memory}))
    later = decided(policy(mode="Vertical"), vertical_figures(replaced, memory_peak=3 * GIB),
                    previous={"lastOomKill": killed.status["lastOomKill"]})
    assert later.status["recommendation"]["requests"]["memory"] == "2458Mi", "the raise holds for a day"
    assert later.action is None
    without = decided(policy(mode="Vertical"), vertical_figures(replaced, memory_peak=3 * GIB))
    assert without.status["recommendation"]["requests"]["memory"] == "1690Mi", "1.5 GiB peak per pod + 10 %"


def test_in_place_resizes_only_the_running_pods_that_differ():
    pods = (("web-a", (ContainerRequests("app", {"cpu": 1.1, "memory": 2253 * 2**20}),)),
            ("web-b", (ContainerRequests("app", {"cpu": 0.2, "memory": GIB}),)))
    decision = decided(policy(mode="Vertical", updateMode="InPlace"),
                       vertical_figures(template(("app", {"cpu": 0.2, "memory": GIB})), pods=pods))
    assert decision.action.pods == ("web-b",)
    assert decision.status["lastAction"]["action"].startswith("pods web-b in shop resized in place")
