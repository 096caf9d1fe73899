"""The ScalingPolicy's decide step and who owns a target: figures in, status, Events and an
HPA's bounds out (no I/O)."""
from dataclasses import replace

import numpy as np

from quartermaster.operator.observe import custom_object
from quartermaster.operator.prometheus_reader import MetricsUnavailable
from quartermaster.operator.scalingpolicy import (HpaRecord, Ownership, PolicyFigures, PoolStrategy, SignalFigures,
                                                  decide, hpa_record, ownership, parse_spec, query_problem,
                                                  resolve_settings, vpa_record)
from quartermaster.planner.pools import strategy_parameters
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


def unreadable(decision, field):
    return [message for reason, message, warning in decision.events
            if reason == "UnreadableTime" and f"status.{field} 'yesterday'" in message and warning]


def test_an_unreadable_last_action_time_starts_the_cooldown_from_now_and_says_so():
    edited = {"lastAction": {"action": "Deployment shop/web pod template", "time": "yesterday"}}
    oversized = vertical_figures(template(("app", {"cpu": 4.0, "memory": 8 * GIB})))
    vertical = policy(mode="Vertical", scaleDown={"cooldownSeconds": 600})
    cooling = decided(vertical, oversized, previous=edited)
    assert cooling.action is None and reason(cooling) == "CoolingDown", "not taken as long ago"
    assert cooling.status["lastAction"] == {**edited["lastAction"], "time": "2027-01-15T08:00:00Z"}, \
        "written back as now, so the cooldown ends"
    assert unreadable(cooling, "lastAction.time")
    later = decide(vertical, parse_spec(vertical), oversized, None, Ownership("web"), None,
                   {**edited, **cooling.status}, NOW + 600)
    assert later.action is not None and not unreadable(later, "lastAction.time")
    # a horizontal policy after a restart: its cooldowns run from now too
    horizontal = policy(mode="Reactive", scaleUp={"step": 10, "cooldownSeconds": 600})
    after_restart = decided(horizontal, figures(demand=2.0), previous=edited)
    assert after_restart.action is None and unreadable(after_restart, "lastAction.time")
    assert after_restart.status["lastAction"]["time"] == "2027-01-15T08:00:00Z"


def test_an_unreadable_oomkill_time_keeps_memory_raised_for_a_day_from_now():
    replaced = template(("app", {"cpu": 1.1, "memory": 2458 * 2**20}))
    edited = {"lastOomKill": {"time": "yesterday", "podPeak": "2Gi"}}
    raised = decided(policy(mode="Vertical"), vertical_figures(replaced, memory_peak=3 * GIB), previous=edited)
    assert raised.status["recommendation"]["requests"]["memory"] == "2458Mi", "the raise is not dropped"
    assert raised.status["lastOomKill"] == {"time": "2027-01-15T08:00:00Z", "podPeak": "2Gi"}
    assert unreadable(raised, "lastOomKill.time")


def test_an_unreadable_oomkill_peak_is_no_record():
    replaced = template(("app", {"cpu": 1.1, "memory": 2458 * 2**20}))
    edited = {"lastOomKill": {"time": "2027-01-15T07:00:00Z", "podPeak": "lots"}}
    calm = decided(policy(mode="Vertical"), vertical_figures(replaced, memory_peak=GIB), previous=edited)
    assert "lastOomKill" not in calm.status
    killed = decided(policy(mode="Vertical"), vertical_figures(replaced, memory_peak=3 * GIB, oom_killed=True),
                     previous=edited)
    assert killed.status["lastOomKill"] == {"time": "2027-01-15T08:00:00Z", "podPeak": "1536Mi"}, \
        "raised from the peak seen now"


def test_in_place_resizes_only_the_running_pods_that_differ():
    pods = (("web-a", (ContainerRequests("app", {"cpu": 1.1, "memory": 2253 * 2**20}),)),
            ("web-b", (ContainerRequests("app", {"cpu": 0.2, "memory": GIB}),)))
    decision = decided(policy(mode="Vertical", updateMode="InPlace"),
                       vertical_figures(template(("app", {"cpu": 0.2, "memory": GIB})), pods=pods))
    assert decision.action.pods == ("web-b",)
    assert decision.status["lastAction"]["action"].startswith("pods web-b in shop resized in place")


# ---- custom signals --------------------------------------------------------------------

QUEUE = 'sum(rabbitmq_queue_messages_ready{queue="orders"})'


def queue_policy(**spec):
    return policy(signals=[{"type": "queueDepth", "query": QUEUE, "target": "50"}], **spec)


def queue_figures(depth=120.0, peak=340.0, target=50.0):
    forecast = np.full(12, depth)
    forecast[1] = peak
    return PolicyFigures(2, (SignalFigures("queueDepth", depth, forecast, 0.9, target, query=QUEUE),), 300, NOW)


def test_a_queue_depth_signal_scales_on_its_forecast_per_replica_target():
    decision = decided(queue_policy(mode="Predictive"), queue_figures())
    assert decision.status["recommendation"]["replicas"] == 7, "340 at the forecast's peak / 50 per replica"
    assert decision.action.min_replicas == 7
    assert decision.status["reasoning"].startswith("queueDepth p90 forecast peaks at 340 at "), \
        decision.status["reasoning"]
    reactive = decided(queue_policy(mode="Reactive"), queue_figures())
    assert reactive.status["recommendation"]["replicas"] == 3 and "queueDepth now 120" in reactive.status["reasoning"]


def test_a_custom_signal_needs_its_own_target():
    untargeted = policy(signals=[{"type": "promql", "query": QUEUE}])
    decision = decided(untargeted, queue_figures(target=None))
    ready = next(c for c in decision.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoTarget") and decision.action is None
    assert ready["message"] == f"no per-replica target for queueDepth `{QUEUE}`: set the signal's target"


def test_a_query_that_fails_or_returns_nothing_stops_the_policy_and_names_the_query():
    spec = parse_spec(queue_policy())
    assert query_problem(spec, {}) is None
    nothing = "QueryReturnedNothing"
    assert query_problem(spec, {"other": MetricsUnavailable(nothing, "x", "u")}) is None
    empty = query_problem(spec, {QUEUE: MetricsUnavailable(nothing, "the query returned no series", "http://p")})
    assert empty == (nothing, f"queueDepth query `{QUEUE}`: the query returned no series (Prometheus at http://p)")
    decision = decided(queue_policy(mode="Predictive"), queue_figures(), problem=empty)
    metrics = next(c for c in decision.status["conditions"] if c["type"] == "MetricsAvailable")
    assert (metrics["status"], metrics["reason"]) == ("False", nothing) and QUEUE in metrics["message"]
    assert decision.action is None and "recommendation" not in decision.status


def test_a_stale_custom_signal_is_named_with_its_query():
    stale = PolicyFigures(2, (SignalFigures("promql", None, np.full(12, 1.0), 0.9, 1.0, query=QUEUE),), 300, NOW)
    decision = decided(policy(signals=[{"type": "promql", "query": QUEUE, "target": "1"}]), stale)
    metrics = next(c for c in decision.status["conditions"] if c["type"] == "MetricsAvailable")
    assert metrics["status"] == "False" and f"promql `{QUEUE}`" in metrics["message"] and decision.action is None


def test_a_vertical_policy_refuses_a_custom_signal():
    decision = decided(queue_policy(mode="Vertical"), vertical_figures(template(("app", {"cpu": 0.2}))))
    ready = next(c for c in decision.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "UnsupportedSignal") and decision.action is None
    assert "cpu and memory requests" in ready["message"] and "queueDepth" in ready["message"]


# ---- the pool's strategy sets what the policy leaves unset -------------------------------

CONSERVATIVE = PoolStrategy("general", "Conservative", strategy_parameters("Conservative"))


def test_the_pools_strategy_fills_in_what_the_policy_leaves_unset():
    alone = resolve_settings(parse_spec(policy()), None)
    assert (alone.parameters.quantile, alone.parameters.horizon_seconds) == (0.9, 900)
    assert alone.source == ("quantile, horizonSeconds, scaleDownDelaySeconds, buffer: the defaults "
                            "(the target is in no ResourcePool)")
    pooled = resolve_settings(parse_spec(policy()), CONSERVATIVE)
    assert pooled.parameters == strategy_parameters("Conservative")
    assert pooled.source == ("quantile, horizonSeconds, scaleDownDelaySeconds, buffer: "
                             "ResourcePool general's Conservative strategy")
    own = resolve_settings(parse_spec(policy(forecast={"quantile": 0.8})), CONSERVATIVE)
    assert (own.parameters.quantile, own.parameters.horizon_seconds) == (0.8, 3600)
    assert own.source == ("quantile: the policy's own; horizonSeconds, scaleDownDelaySeconds, buffer: "
                          "ResourcePool general's Conservative strategy")


def test_a_member_of_a_conservative_pool_looks_an_hour_ahead_unless_it_says_otherwise():
    forecast = np.full(12, 2.0)
    forecast[8] = 4.0  # 45 minutes ahead: beyond the default 15, within Conservative's 60

    def recommended(obj, pool):
        signal = SignalFigures("cpu", 2.0, forecast, 0.9, 0.5)
        decision = decided(obj, PolicyFigures(4, (signal,), 300, NOW, pool=pool))
        return decision.status["recommendation"]["replicas"], decision.status["settings"]

    assert recommended(policy(mode="Predictive"), None)[0] == 4
    replicas, settings = recommended(policy(mode="Predictive"), CONSERVATIVE)
    assert replicas == 8 and settings["horizonSeconds"] == 3600 and "ResourcePool general" in settings["source"]
    assert recommended(policy(mode="Predictive", forecast={"horizonSeconds": 900}), CONSERVATIVE)[0] == 4


def test_the_pools_reaction_speed_holds_replicas_after_a_trusted_forecast_falls():
    aggressive = PoolStrategy("burst", "Aggressive", strategy_parameters("Aggressive"))  # 2-minute scale-down delay
    obj = policy(mode="Predictive", scaleDown={"step": 10, "cooldownSeconds": 0})
    high, low = figures(demand=2.0, peak=4.0, replicas=4), figures(demand=1.0, peak=1.0, replicas=8)

    def after_five_minutes(pool):
        first = decide(obj, parse_spec(obj), replace(high, pool=pool), None, Ownership("web"), None, {}, NOW)
        return decide(obj, parse_spec(obj), replace(low, pool=pool), None, Ownership("web"), first.state, {},
                      NOW + 300).status["recommendation"]["replicas"]

    assert after_five_minutes(None) == 8, "the default 10-minute delay holds the peak's replicas"
    assert after_five_minutes(aggressive) == 2, "Aggressive gives them back after 2 minutes"


def test_a_vertical_member_takes_its_pools_buffer():
    decision = decided(policy(mode="Vertical", updateMode="Off"),
                       replace(vertical_figures(template(("app", {"cpu": 0.2, "memory": GIB}))), pool=CONSERVATIVE))
    assert decision.status["recommendation"]["requests"]["cpu"] == "1200m", "1 core per pod forecast + 20 %"
