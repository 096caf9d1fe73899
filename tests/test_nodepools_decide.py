"""A NodePool ScalingPolicy's decide step: the pool's figures and what its provider said in,
status, Events and the provider action out (no I/O)."""
from quartermaster.operator.models import ResourcePoolSpec
from quartermaster.operator.nodepools import NodePoolFigures, act_result, decide
from quartermaster.operator.observe import custom_object
from quartermaster.operator.scalingpolicy import parse_spec, resolve_settings
from quartermaster.providers.interface import NodePool, QuotaExceeded, Throttled
from quartermaster.providers.node_pools import NodePoolObservation, NodePoolSize

NOW = 1_800_000_000.0
NODE = {"cpu": 4.0, "memory": 16 * 2.0**30, "pods": 58.0}
POOL = ("batch", ResourcePoolSpec.model_validate({"providerNodePool": {"provider": "kwok", "name": "batch"}}))


def policy(**spec):
    return custom_object({"apiVersion": "quartermaster.dev/v1alpha1", "kind": "ScalingPolicy",
                          "metadata": {"name": "nodes", "namespace": "batch", "uid": "u1", "generation": 1},
                          "spec": {"targetRef": {"kind": "NodePool", "name": "batch"}, "signals": [{"type": "cpu"}],
                                   "minReplicas": 1, "maxReplicas": 10, **spec}})


def observed(desired=2, size=2):
    return NodePoolObservation(NodePool("batch", "m5.xlarge", ("kwok-a",), 0, 10, desired, size), NODE)


def decided(obj, figures, observation=observed(), last=None, recent=None, problem=None, previous=None):
    spec = parse_spec(obj)
    return decide(obj, spec, POOL, figures, observation, resolve_settings(spec, None), problem, last, recent,
                  previous or {}, NOW)


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
    throttled = act_result(action, error=Throttled("rate exceeded"))
    retry = decided(policy(), two_nodes(pending=[{"cpu": 3.0}] * 3), last=throttled)
    assert retry.action == action and (ready(retry)["status"], ready(retry)["reason"]) == ("False", "Throttled")
    refused = act_result(action, error=QuotaExceeded("vCPU limit"))
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
    decision = decided(policy(mode="Predictive"), idle, observed(4, 4), recent=(), problem=(
        "PrometheusUnreachable", "no answer"))
    assert decision.action is None and "held: no shrinking without metrics" in decision.status["reasoning"]


def test_a_provider_error_describing_the_pool_is_ready_false_and_nothing_acts():
    decision = decided(policy(), two_nodes(), NodePoolObservation(error=Throttled("slow down")))
    assert decision.action is None and (ready(decision)["status"], ready(decision)["reason"]) == ("False", "Throttled")
    assert ("Throttled", ready(decision)["message"], True) in decision.events
