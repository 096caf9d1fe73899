"""A NodePool ScalingPolicy's decide step: the pool's figures and what its provider said in,
status, Events and the provider action out (no I/O)."""
from quartermaster.operator.models import ResourcePoolSpec
from quartermaster.operator.conditions import rfc3339
from quartermaster.operator.nodepools import NodePoolFigures, act_result, decide
from quartermaster.operator.observe import custom_object
from quartermaster.operator.scalingpolicy import parse_spec, resolve_settings
from quartermaster.planner.nodepools import NodePoolMemory
from quartermaster.providers.interface import (
    InstanceType, InsufficientCapacity, NodePool, QuotaExceeded, Throttled, Unavailable, table_instance_types)
from quartermaster.providers.node_pools import NodePoolObservation, NodePoolSize

NOW = 1_800_000_000.0
NODE_TYPE = InstanceType("m5.xlarge", {"cpu": 4.0, "memory": 16 * 2.0**30, "pods": 58.0}, 0.192)
POOL = ("batch", ResourcePoolSpec.model_validate({"providerNodePool": {"provider": "kwok", "name": "batch"}}))


def policy(**spec):
    return custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ScalingPolicy",
                          "metadata": {"name": "nodes", "namespace": "batch", "uid": "u1", "generation": 1},
                          "spec": {"targetRef": {"kind": "NodePool", "name": "batch"}, "signals": [{"type": "cpu"}],
                                   "minReplicas": 1, "maxReplicas": 10, **spec}})


def observed(desired=2, size=2):
    return NodePoolObservation(NodePool("batch", "m5.xlarge", ("kwok-a",), 0, 10, desired, size),
                               instance_types=(NODE_TYPE,))


def decided(obj, figures, observation=observed(), last=None, memory=None, problem=None, previous=None, pool=POOL,
            now=NOW):
    spec = parse_spec(obj)
    return decide(obj, spec, pool, figures, observation, resolve_settings(spec, None), problem, last, memory,
                  previous or {}, now)


def two_nodes(pending=()):
    return NodePoolFigures(2, tuple(pending), ({"cpu": 3.0},) * 2, ({"cpu": 1.0, "pods": 57.0},) * 2)


def ready(decision) -> dict:
    return next(c for c in decision.status["conditions"] if c["type"] == "Ready")


def test_pending_pods_size_the_pool_and_the_size_is_recorded_before_it_is_set():
    decision = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3))
    assert decision.action == NodePoolSize("kwok", "batch", 5)
    assert decision.status["lastAction"]["action"] == "node pool batch (kwok): 5 nodes"
    assert ("ResizedNodePool", "node pool batch (kwok): 5 nodes", False) in decision.events
    assert ready(decision)["reason"] == "Resizing" and decision.status["recommendation"]["replicas"] == 5


def test_a_size_repeated_while_the_pool_gets_there_is_not_recorded_again():
    first = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3))
    again = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), observed(desired=5, size=4),
                    previous=first.status)
    assert again.action == first.action and "lastAction" not in again.status
    assert not [e for e in again.events if e[0] == "ResizedNodePool"]


def test_a_transient_error_is_retried_each_cycle_and_a_permanent_one_waits_for_another_size():
    action = NodePoolSize("kwok", "batch", 5)
    throttled = act_result(action, error=Throttled("rate exceeded"), answered_at=NOW)
    retry = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), last=throttled)
    assert retry.action == action and (ready(retry)["status"], ready(retry)["reason"]) == ("False", "Throttled")
    refused = act_result(action, error=QuotaExceeded("vCPU limit"), answered_at=NOW)
    waiting = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), last=refused)
    assert waiting.action is None and ready(waiting)["reason"] == "QuotaExceeded"
    assert "not tried again until the size changes" in ready(waiting)["message"]
    # another size is asked again
    other = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 5), last=refused)
    assert other.action == NodePoolSize("kwok", "batch", 7)


def test_an_operator_that_starts_holds_the_pool_for_one_cooldown_before_shrinking():
    idle = NodePoolFigures(4, (), (), ({"cpu": 4.0, "pods": 58.0},) * 4)
    first = decided(policy(scaleDown={"cooldownSeconds": 60}), idle, observed(4, 4))
    assert first.action is None and first.status["recommendation"]["replicas"] == 4
    assert first.status["settings"]["scaleDownDelaySeconds"] == 60
    assert "scaleDownDelaySeconds: the policy's own" in first.status["settings"]["source"]
    obj = policy(scaleDown={"cooldownSeconds": 60})
    later = decide(obj, parse_spec(obj), POOL, idle, observed(4, 4), resolve_settings(parse_spec(obj), None), None,
                   None, first.state, first.status, NOW + 61)
    assert later.action == NodePoolSize("kwok", "batch", 1)


def test_a_predictive_policy_does_not_shrink_without_metrics():
    idle = NodePoolFigures(4, (), (), ({"cpu": 4.0, "pods": 58.0},) * 4)
    decision = decided(policy(mode="Predictive"), idle, observed(4, 4), memory=NodePoolMemory(), problem=(
        "PrometheusUnreachable", "no answer"))
    assert decision.action is None and "held: no shrinking without metrics" in decision.status["reasoning"]


def test_a_provider_error_describing_the_pool_is_ready_false_and_nothing_acts():
    decision = decided(policy(), two_nodes(), NodePoolObservation(error=Throttled("slow down")))
    assert decision.action is None and (ready(decision)["status"], ready(decision)["reason"]) == ("False", "Throttled")
    assert ("Throttled", ready(decision)["message"], True) in decision.events


def test_a_resize_that_went_through_after_retries_says_so():
    action = NodePoolSize("aws", "batch", 5)
    retried = act_result(action, retried=(Throttled("Throttling: slow down"), Unavailable("503")), answered_at=NOW)
    assert (retried.ready, retried.reason) == (True, "ResizedAfterRetries")
    assert retried.message == ("node pool batch (aws): 5 nodes, set after 3 tries "
                               "(Throttled, Unavailable retried with backoff)")
    failed = act_result(action, error=Throttled("Throttling: slow down"), retried=(Throttled("a"),) * 3,
                        answered_at=NOW)
    assert (failed.ready, failed.reason, failed.retry) == (False, "Throttled", True)
    assert failed.message == ("aws node pool batch: Throttling: slow down after 4 tries (Throttled retried with "
                              "backoff); tried again next cycle")
    assert act_result(action, answered_at=NOW).reason == "Resizing"


AWS_TYPES = tuple(table_instance_types("aws"))


def shaped_pool(**fields):
    return ("batch", ResourcePoolSpec.model_validate(
        {"providerNodePool": {"provider": "kwok", "name": "batch", **fields}}))


def typed(desired=2, size=2, instance_type="m5.xlarge", spot=0):
    return NodePoolObservation(NodePool("batch", instance_type, ("kwok-a",), 0, 10, desired, size, spot),
                               instance_types=AWS_TYPES)


def test_the_cheapest_allowed_instance_type_that_fits_sizes_the_pool_and_its_price_is_said():
    pool = shaped_pool(instanceTypes=["m5.2xlarge", "c5.xlarge", "r5.xlarge"])
    # 2 nodes with 3 cores on each (1 free) and three pending 3-core pods: 15 cores in all.
    # c5.xlarge (3.92 cores, $0.170/h): 3 cores a node → 3 pending pods on 3 new nodes, 5 nodes
    # for the 15 cores (15 / 3.33 → 5) = $0.85/h; m5.2xlarge 15 / 6.72 → 3 × $0.384 = $1.15/h.
    decision = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), typed(), pool=pool)
    assert decision.action == NodePoolSize("kwok", "batch", 5, "c5.xlarge")
    assert decision.action.price_per_hour == 0.85
    assert decision.status["recommendation"] == {"replicas": 5, "instanceType": "c5.xlarge", "pricePerHour": 0.85}
    assert decision.status["reasoning"].startswith(
        "cheapest fitting instance type c5.xlarge on kwok: 5 nodes × $0.170/h = $0.85/h")
    assert "next m5.2xlarge on kwok at $1.15/h" in decision.status["reasoning"]
    assert ("ResizedNodePool", "node pool batch (kwok): 5 nodes of c5.xlarge at $0.85/h", False) in decision.events
    # memory-heavy pods: r5.xlarge (29 GiB) is the cheapest that holds them
    heavy = NodePoolFigures(0, ({"cpu": 0.5, "memory": 20 * 2.0**30},) * 2, (), ())
    assert decided(policy(), heavy, typed(0, 0), pool=pool).action.instance_type == "r5.xlarge"


def test_a_pool_at_its_size_but_of_another_instance_type_is_asked_for_the_type():
    pool = shaped_pool(instanceTypes=["c5.xlarge"])
    decision = decided(policy(), two_nodes(), typed(2, 2, "m5.xlarge"), pool=pool)
    assert decision.action == NodePoolSize("kwok", "batch", 2, "c5.xlarge")
    assert ready(decided(policy(), two_nodes(), typed(2, 2, "c5.xlarge"), pool=pool))["reason"] == "Sized"


def test_an_instance_type_the_provider_does_not_offer_is_ready_false():
    decision = decided(policy(), two_nodes(), typed(), pool=shaped_pool(instanceTypes=["c5.xlarge", "x9.huge"]))
    assert decision.action is None and ready(decision)["reason"] == "UnknownInstanceType"
    assert "offers no instance type x9.huge; it offers c5.2xlarge, c5.xlarge" in ready(decision)["message"]
    gpu = decided(policy(), two_nodes(pending=[{"nvidia.com/gpu": 1.0}]), typed(),
                  pool=shaped_pool(instanceTypes=["c5.xlarge"]))
    assert gpu.action.size == 2 and "1 pending pods are larger than a node" in gpu.status["reasoning"]


def condition(decision, type_: str) -> dict:
    return next(c for c in decision.status["conditions"] if c["type"] == type_)


def test_refused_spot_falls_back_to_on_demand_and_spot_is_tried_again_after_the_wait():
    pool = shaped_pool(spotPercentage=50, spotRetrySeconds=300)
    growing = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), typed(), pool=pool)
    assert growing.action == NodePoolSize("kwok", "batch", 5, None, 50)
    assert growing.action.price_per_hour == round(5 * (0.5 * 0.074 + 0.5 * 0.192), 4)
    assert condition(growing, "Spot")["reason"] == "SpotAtTarget" and "lastSpotRefusal" not in growing.status
    refused = act_result(growing.action, error=InsufficientCapacity("InsufficientInstanceCapacity: no m5.xlarge"),
                         answered_at=NOW + 2)
    assert refused.spot_refused.startswith("spot capacity refused (InsufficientInstanceCapacity")
    fallback = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), typed(spot=50), last=refused,
                       memory=growing.state, previous=growing.status, pool=pool, now=NOW + 10)
    assert fallback.action == NodePoolSize("kwok", "batch", 5, None, 0)
    spot = condition(fallback, "Spot")
    assert (spot["status"], spot["reason"]) == ("False", "SpotFallback")
    assert spot["message"] == ("kwok node pool batch: spot capacity refused (InsufficientInstanceCapacity: no "
                               f"m5.xlarge): on-demand only, spot tried again 5 min after it (at {rfc3339(NOW + 302)})")
    assert ("SpotFallback", spot["message"], True) in fallback.events
    # recorded with the refusal's own time, before anything is done about it
    assert fallback.status["lastSpotRefusal"] == {"time": rfc3339(NOW + 2), "cause": refused.spot_refused}
    # applied: the next cycles stay on-demand until the wait is over, then ask for spot again
    applied = act_result(fallback.action, answered_at=NOW + 11)
    five_nodes = NodePoolFigures(5, (), ({"cpu": 3.0},) * 5, ({"cpu": 1.0},) * 5)
    waiting = decided(policy(), five_nodes, typed(5, 5), last=applied, memory=fallback.state,
                      previous=fallback.status, pool=pool, now=NOW + 200)
    assert ready(waiting)["reason"] == "Sized" and condition(waiting, "Spot")["reason"] == "SpotFallback"
    again = decided(policy(), five_nodes, typed(5, 5), last=applied, memory=waiting.state,
                    previous=waiting.status, pool=pool, now=NOW + 302)
    assert again.action.spot_percentage == 50 and condition(again, "Spot")["reason"] == "SpotAtTarget"
    assert ("SpotAtTarget", condition(again, "Spot")["message"], False) in again.events
    assert "50% of new nodes spot again, after the fallback" in condition(again, "Spot")["message"]


def test_a_refused_resize_is_acted_on_once_though_it_stays_the_last_answer():
    """Spot asked for again on a pool at its size, on-demand, and refused: the fallback is
    the pool as it is, so nothing is applied and the refusal stays the last answer the
    provider gave. It is still one refusal: spot is asked for again after the wait."""
    pool = shaped_pool(spotPercentage=50, spotRetrySeconds=300)
    five_nodes = NodePoolFigures(5, (), ({"cpu": 3.0},) * 5, ({"cpu": 1.0},) * 5)
    asked = decided(policy(), five_nodes, typed(5, 5), memory=NodePoolMemory(), pool=pool)
    assert asked.action == NodePoolSize("kwok", "batch", 5, None, 50)
    refused = act_result(asked.action, error=InsufficientCapacity("ZONE_RESOURCE_POOL_EXHAUSTED: no spot"),
                         answered_at=NOW + 1)
    previous, memory = asked.status, asked.state
    for now in (NOW + 10, NOW + 150, NOW + 300):
        held = decided(policy(), five_nodes, typed(5, 5), last=refused, memory=memory, previous=previous, pool=pool,
                       now=now)
        assert held.action is None and ready(held)["reason"] == "Sized"
        assert condition(held, "Spot")["reason"] == "SpotFallback"
        previous, memory = {**previous, **held.status}, held.state
    again = decided(policy(), five_nodes, typed(5, 5), last=refused, memory=memory, previous=previous, pool=pool,
                    now=NOW + 301)
    assert again.action == NodePoolSize("kwok", "batch", 5, None, 50)
    assert condition(again, "Spot")["reason"] == "SpotAtTarget"


def test_interrupted_spot_nodes_fall_back_to_on_demand():
    pool = shaped_pool(spotPercentage=100)
    figures = NodePoolFigures(2, (), ({"cpu": 3.0},) * 2, ({"cpu": 1.0},) * 2, interrupted=("batch-1",))
    decision = decided(policy(), figures, typed(spot=100), pool=pool)
    assert decision.action == NodePoolSize("kwok", "batch", 2, None, 0)
    assert "1 spot nodes interrupted (batch-1): on-demand only" in condition(decision, "Spot")["message"]


def reported_refusal(when, spot=50):
    """The pool as a provider reports it whose latest launch, at `when`, was refused spot."""
    return NodePoolObservation(NodePool("batch", "m5.xlarge", ("kwok-a",), 0, 10, 2, 2, spot,
                                        spot_refused="Could not launch Spot Instances. InsufficientInstanceCapacity",
                                        spot_refused_at=when), instance_types=AWS_TYPES)


def test_a_refusal_the_provider_reports_falls_back_for_the_wait_after_it_and_a_newer_one_again():
    pool = shaped_pool(spotPercentage=50, spotRetrySeconds=300)
    first = decided(policy(), two_nodes(), reported_refusal(NOW - 30), memory=NodePoolMemory(), pool=pool)
    assert first.action == NodePoolSize("kwok", "batch", 2, None, 0)
    assert condition(first, "Spot")["message"] == (
        "kwok node pool batch: spot capacity refused (Could not launch Spot Instances. InsufficientInstanceCapacity): "
        f"on-demand only, spot tried again 5 min after it (at {rfc3339(NOW + 270)})")
    # the group, on-demand now, still reports that same launch as its latest: after the wait, spot again
    later = decided(policy(), two_nodes(), reported_refusal(NOW - 30, spot=0), memory=first.state,
                    previous=first.status, pool=pool, now=NOW + 270)
    assert later.action.spot_percentage == 50 and condition(later, "Spot")["reason"] == "SpotAtTarget"
    # a launch refused since: on-demand again, for the wait after it
    again = decided(policy(), two_nodes(), reported_refusal(NOW + 310), memory=later.state, previous=later.status,
                    pool=pool, now=NOW + 320)
    assert again.action.spot_percentage == 0 and again.status["lastSpotRefusal"]["time"] == rfc3339(NOW + 310)


def test_a_restarted_operator_decides_on_a_refusal_as_it_did_before():
    """Nothing of the operator's memory: the provider's report and the status it wrote."""
    pool = shaped_pool(spotPercentage=50, spotRetrySeconds=300)
    # the group still reports a launch refused longer than the wait ago: no new fallback
    old = decided(policy(), two_nodes(), reported_refusal(NOW - 301, spot=50), pool=pool)
    assert old.action is None and ready(old)["reason"] == "Sized"
    assert (condition(old, "Spot")["status"], condition(old, "Spot")["reason"]) == ("True", "SpotAtTarget")
    assert not [e for e in old.events if e[0] == "SpotFallback"]
    # one within the wait: on-demand until the wait after it is over, as before the restart
    before = decided(policy(), two_nodes(), reported_refusal(NOW - 100), memory=NodePoolMemory(), pool=pool,
                     now=NOW - 90)
    after = decided(policy(), two_nodes(), reported_refusal(NOW - 100, spot=0), previous=before.status, pool=pool)
    assert after.action is None and condition(after, "Spot")["message"] == condition(before, "Spot")["message"]
    # a refused resize the restarted operator never saw answered: the status's record holds the fallback
    recorded = {"lastSpotRefusal": {"time": rfc3339(NOW - 100), "cause": "spot capacity refused (ZONE_RESOURCE_"
                                                                         "POOL_EXHAUSTED: no spot)"}}
    held = decided(policy(), two_nodes(), typed(spot=0), previous=recorded, pool=pool)
    assert held.action is None and condition(held, "Spot")["reason"] == "SpotFallback"
    assert decided(policy(), two_nodes(), typed(spot=0), previous=recorded, pool=pool,
                   now=NOW + 200).action.spot_percentage == 50


def test_a_pool_whose_provider_keeps_its_spot_share_is_still_sized_and_says_it_cannot_fall_back():
    """A GCP managed instance group is all spot or none, as its template says: GKE's taint on
    a spot node being reclaimed cannot turn its new nodes on-demand. The pool still grows
    at its own share (a share it does not have would be Unsupported, and not sized)."""
    pool = ("batch", ResourcePoolSpec.model_validate({"providerNodePool": {
        "provider": "gcp", "name": "batch", "spotPercentage": 100, "spotRetrySeconds": 300}}))
    fixed = "a managed instance group's instances are all spot or none, as its instance template says"
    mig = NodePoolObservation(NodePool("batch", "m5.xlarge", ("us-central1-a",), 0, 10, 2, 2, 100,
                                       fixed_spot_share=fixed), instance_types=AWS_TYPES)
    figures = NodePoolFigures(2, ({"cpu": 3.0},) * 3, ({"cpu": 3.0},) * 2, ({"cpu": 1.0},) * 2,
                              interrupted=("gke-batch-1",))
    decision = decided(policy(), figures, mig, pool=pool)
    assert decision.action == NodePoolSize("gcp", "batch", 5, None, 100)
    spot = condition(decision, "Spot")
    assert (spot["status"], spot["reason"]) == ("False", "SpotFallbackUnsupported")
    assert spot["message"] == (f"gcp node pool batch: 1 spot nodes interrupted (gke-batch-1): {fixed}, so its new "
                               "nodes cannot fall back to on-demand: they stay 100% spot, and this is said until 5 min "
                               f"after it (at {rfc3339(NOW + 300)})")
    assert ("SpotFallbackUnsupported", spot["message"], True) in decision.events


def test_a_refusal_time_in_status_that_cannot_be_read_starts_the_wait_from_now():
    """status can be edited by hand: a time that is not RFC3339 neither crashes every cycle
    nor ends the fallback; it is taken as now, with a warning Event."""
    pool = shaped_pool(spotPercentage=50, spotRetrySeconds=300)
    edited = {"lastSpotRefusal": {"time": "yesterday", "cause": "spot capacity refused (no spot)"}}
    decision = decided(policy(), two_nodes(), typed(spot=0), previous=edited, pool=pool)
    assert decision.status["lastSpotRefusal"] == {"time": rfc3339(NOW), "cause": "spot capacity refused (no spot)"}
    assert condition(decision, "Spot")["reason"] == "SpotFallback" and decision.action is None
    assert [e for e in decision.events if e[0] == "UnreadableTime"] == [(
        "UnreadableTime", f"status.lastSpotRefusal.time 'yesterday' is not an RFC3339 time (such as {rfc3339(NOW)}): "
                          "taken as now, so new nodes are on-demand for spotRetrySeconds from now", True)]
