"""A Quota's `budget.action: Block`: what a blocked scaler may set (pure), which Quota holds
which namespace, and the ScalingPolicy decide steps (horizontal, vertical, node pool) held
while the Quota is over its budget and free again when it is not (no I/O)."""
from dataclasses import replace

from quartermaster.operator import nodepools
from quartermaster.operator.nodepools import NodePoolFigures
from quartermaster.operator.observe import snapshot_from_objects
from quartermaster.operator.quota import budget_holds, figures as quota_figures, parse_spec as parse_quota
from quartermaster.operator.scalingpolicy import HpaRecord, Ownership, decide, parse_spec, resolve_settings
from quartermaster.operator.workloads import ContainerRequests
from quartermaster.planner.budget import BudgetHold, held_replica_bounds, held_requests, held_size
from quartermaster.planner import budget
from quartermaster.providers.node_pools import NodePoolSize

from test_nodepools_decide import POOL, observed, two_nodes
from test_nodepools_decide import policy as node_pool_policy
from test_scalingpolicy_decide import GIB, NOW, figures, policy, template, vertical_figures

OVER = BudgetHold("team-shop", budget.EXCEEDED, "spent 3.00 USD over the daily budget 1.00")
WITHIN = BudgetHold("team-shop", budget.WITHIN, "spend is within the budget")


def test_blocked_bounds_never_exceed_what_runs_and_may_go_down():
    assert held_replica_bounds(running=2, floor=8, ceiling=10) == (2, 2), "no higher floor, and no HPA scale-up"
    assert held_replica_bounds(running=5, floor=3, ceiling=10) == (3, 5), "a lower floor lets the HPA scale down"
    assert held_replica_bounds(running=12, floor=4, ceiling=10) == (4, 10), "never above the spec's maximum"
    assert held_replica_bounds(running=0, floor=3, ceiling=10) == (1, 1), "the HPA API's minimum is 1"


def test_blocked_requests_go_down_not_up_and_no_request_is_added():
    template = {"app": {"cpu": 0.5, "memory": GIB}, "proxy": {"cpu": 0.1}}
    proposed = {"app": {"cpu": 0.2, "memory": 2 * GIB}, "proxy": {"cpu": 0.3, "memory": GIB}}
    assert held_requests(template, proposed) == {"app": {"cpu": 0.2, "memory": GIB}, "proxy": {"cpu": 0.1}}
    assert held_size(in_place=3, size=5) == 3 and held_size(in_place=3, size=2) == 2


def quota(name, namespaces, **budget):
    return {"apiVersion": "quartermaster.dev/v1alpha1", "kind": "Quota", "metadata": {"name": name, "uid": name},
            "spec": {"scope": {"namespaces": namespaces}, "budget": {"daily": 1, **budget}}}


def exceeded(flag: bool, reason: str = "x") -> dict:
    return {"conditions": [{"type": "BudgetExceeded", "status": str(flag), "reason": reason,
                            "message": "over" if flag else "within"}]}


def test_a_namespace_is_held_by_a_block_quota_over_its_budget_and_only_by_one():
    bodies = [quota("alert", ["shop"]), quota("b-block", ["shop", "web"], action="Block"),
              quota("a-block", ["web"], action="Block")]
    snapshot = snapshot_from_objects(namespaces=[{"metadata": {"name": n}} for n in ("shop", "web")], quotas=bodies)
    scopes = {q.name: (spec, quota_figures(q, spec, snapshot)) for q in snapshot.quotas for spec in [parse_quota(q)]}
    statuses = {"alert": exceeded(True), "b-block": exceeded(True), "a-block": exceeded(False)}
    holds = budget_holds({name: (*scope, statuses[name]) for name, scope in scopes.items()})
    assert holds["shop"] == BudgetHold("b-block", budget.EXCEEDED, "over"), "an Alert Quota holds nothing"
    assert holds["web"] == BudgetHold("b-block", budget.EXCEEDED, "over"), \
        "one over its budget before one within by name"
    statuses["b-block"] = exceeded(False)
    holds = budget_holds({name: (*scope, statuses[name]) for name, scope in scopes.items()})
    assert holds["web"] == BudgetHold("a-block", budget.WITHIN, "within") and not holds["shop"].exceeded


def allowed(decision) -> dict:
    return next((c for c in decision.status["conditions"] if c["type"] == "ScalingAllowed"), {})


def horizontal(hold, owner=Ownership("web"), previous=None, **spec):
    obj = policy(mode="Predictive", **spec)
    return decide(obj, parse_spec(obj), figures(demand=2.0, peak=4.0, replicas=2), None, owner, None,
                  previous or {}, NOW, hold)


def test_over_the_budget_a_horizontal_policy_keeps_its_hpa_at_what_runs_and_says_why():
    free = horizontal(None)
    assert (free.action.min_replicas, free.action.max_replicas) == (8, 10) and not allowed(free)
    held = horizontal(OVER)
    assert (held.action.min_replicas, held.action.max_replicas) == (2, 2)
    assert held.status["recommendation"]["replicas"] == 8, "the recommendation still says what it would do"
    condition = allowed(held)
    assert condition["status"] == "False" and condition["reason"] == "BudgetExceeded"
    assert "Quota team-shop" in condition["message"] and "daily budget" in condition["message"]
    set_to_three = replace(figures(demand=2.0, peak=4.0, replicas=2), template=template(("app", {"cpu": 0.5})))
    obj = policy(mode="Predictive")
    restarting = decide(obj, parse_spec(obj), replace(set_to_three, template=set_to_three.template._replace(
        replicas=3)), None, Ownership("web"), None, {}, NOW, OVER)
    assert (restarting.action.min_replicas, restarting.action.max_replicas) == (3, 3), \
        "held at the replicas it is set to, not the pods there are while one restarts"
    assert ("BudgetExceeded", condition["message"], True) in held.events
    # within the budget again: the floor it wants, and an Event that it may scale again
    resumed = horizontal(WITHIN, previous={"conditions": held.status["conditions"]})
    assert (resumed.action.min_replicas, resumed.action.max_replicas) == (8, 10)
    assert allowed(resumed)["reason"] == "WithinBudget" and resumed.events[0][0] == "WithinBudget"


def test_over_the_budget_the_hpa_is_capped_even_when_the_policy_would_leave_it_alone():
    at_max = HpaRecord("shop", "web", "Deployment", "web", "web", False, 8, 10)
    assert horizontal(None, Ownership("web", at_max)).action is None, "it holds the bounds already"
    capped = horizontal(OVER, Ownership("web", at_max))
    assert (capped.action.min_replicas, capped.action.max_replicas) == (2, 2), "the HPA cannot scale up on cpu"
    assert horizontal(OVER, updateMode="Off").action is None, "Off touches nothing, blocked or not"
    # the block lifted while the policy does not act (its forecast distrusted): the ceiling
    # goes back up, so the HPA may scale on cpu again; the floor stays
    was_capped = HpaRecord("shop", "web", "Deployment", "web", "web", False, 2, 2)
    for hold in (WITHIN, None):
        freed = horizontal(hold, Ownership("web", was_capped), confidenceThreshold=0.99)
        assert allowed(freed).get("reason") in ("WithinBudget", None)
        assert (freed.action.min_replicas, freed.action.max_replicas) == (2, 10)
    at_spec = HpaRecord("shop", "web", "Deployment", "web", "web", False, 2, 10)
    assert horizontal(WITHIN, Ownership("web", at_spec), confidenceThreshold=0.99).action is None, \
        "a distrusted policy leaves an HPA at the spec's ceiling alone"


def test_over_the_budget_a_vertical_policy_lowers_requests_but_raises_none():
    small = template(("app", {"cpu": 0.2, "memory": 4 * GIB}))
    obj = policy(mode="Vertical")

    def vertical(hold):
        return decide(obj, parse_spec(obj), vertical_figures(small), None, Ownership("web"), None, {}, NOW, hold)
    free = vertical(None).action.containers[0].requests
    assert free["cpu"] == 1.1 and free["memory"] < 4 * GIB
    held = vertical(OVER)
    assert held.action.containers[0].requests == {"cpu": 0.2, "memory": free["memory"]}, "memory down, cpu not up"
    assert held.status["recommendation"]["requests"]["cpu"] == "1100m"


def test_over_the_budget_a_node_pool_does_not_grow():
    obj = node_pool_policy()
    spec = parse_spec(obj)

    def sized(hold):
        return nodepools.decide(obj, spec, POOL, two_nodes(pending=[{"cpu": 3.0}] * 3), observed(),
                                resolve_settings(spec, None), None, None, None, {}, NOW, hold)
    assert sized(None).action == NodePoolSize("kwok", "batch", 5)
    held = sized(OVER)
    assert held.action is None and held.status["recommendation"]["replicas"] == 2
    assert "over its budget" in held.status["reasoning"] and allowed(held)["reason"] == "BudgetExceeded"
    # a cloud pool set to 2 whose instances have not joined yet: held at 2, not shrunk to none
    booting = nodepools.decide(obj, spec, POOL, NodePoolFigures(0, ({"cpu": 3.0},) * 3, (), ()), observed(),
                               resolve_settings(spec, None), None, None, None, {}, NOW, OVER)
    assert booting.action is None and booting.status["recommendation"]["replicas"] == 2


def test_over_the_budget_in_place_resizes_lower_pods_to_the_held_requests_and_raise_none():
    pods = (("web-a", (ContainerRequests("app", {"cpu": 4.0, "memory": 4 * GIB}),)),
            ("web-b", (ContainerRequests("app", {"cpu": 0.2, "memory": 4 * GIB}),)))
    obj = policy(mode="Vertical", updateMode="InPlace")
    figures_now = vertical_figures(template(("app", {"cpu": 4.0, "memory": 4 * GIB})), pods=pods)
    free = decide(obj, parse_spec(obj), figures_now, None, Ownership("web"), None, {}, NOW, None)
    assert free.action.pods == ("web-a", "web-b") and free.action.containers[0].requests["cpu"] == 1.1
    held = decide(obj, parse_spec(obj), figures_now, None, Ownership("web"), None, {}, NOW, OVER)
    assert held.action.containers == free.action.containers, \
        "the recommendation is under the template's: web-a comes down to it, not to web-b's 200m"
    assert held.action.pods == ("web-a",), "web-b keeps its 200m: 1100m would raise its charge"
    assert "web-b keep their requests" in held.status["reasoning"]
    only_lagging = vertical_figures(template(("app", {"cpu": 4.0, "memory": 4 * GIB})), pods=pods[1:])
    waiting = decide(obj, parse_spec(obj), only_lagging, None, Ownership("web"), None, {}, NOW, OVER)
    ready = next(c for c in waiting.status["conditions"] if c["type"] == "Ready")
    assert waiting.action is None and ready["reason"] == "UpToDate" and "budget allows" in ready["message"]


def hold_of(budget_spec: dict, status: dict) -> BudgetHold:
    body = quota("shop-budget", ["shop"], action="Block")
    body["spec"]["budget"] = {"action": "Block", **budget_spec}
    snapshot = snapshot_from_objects(namespaces=[{"metadata": {"name": "shop"}}], quotas=[body])
    spec = parse_quota(snapshot.quotas[0])
    return budget_holds({"shop-budget": (spec, quota_figures(snapshot.quotas[0], spec, snapshot), status)})["shop"]


def test_a_block_quota_whose_spend_was_never_read_holds_nothing_and_says_so():
    hold = hold_of({"daily": 1}, {})
    assert hold.reason == budget.SPEND_UNKNOWN and not hold.exceeded
    unknown = horizontal(hold)
    assert (unknown.action.min_replicas, unknown.action.max_replicas) == (8, 10)
    assert allowed(unknown)["reason"] == "SpendUnknown" and "CostAvailable" in allowed(unknown)["message"]


def test_a_block_quota_that_cannot_compare_or_has_no_limit_holds_nothing_and_says_why():
    mismatch = {"conditions": [{"type": "BudgetExceeded", "status": "False", "reason": "CurrencyMismatch",
                                "message": "the budget is in EUR, the price table in USD: not compared"}]}
    hold = hold_of({"daily": 1, "currency": "EUR"}, mismatch)
    condition = allowed(horizontal(hold))
    assert (condition["status"], condition["reason"]) == ("True", "CurrencyMismatch")
    assert "in EUR, the price table in USD" in condition["message"] and "within" not in condition["message"]
    # no daily or monthly budget: the Quota never has a BudgetExceeded to be over, and one
    # left from an earlier spec that had a limit holds nothing either
    for status in ({}, exceeded(True)):
        hold = hold_of({}, status)
        assert hold.reason == budget.NO_LIMIT and not hold.exceeded
        unlimited = horizontal(hold)
        assert (unlimited.action.min_replicas, unlimited.action.max_replicas) == (8, 10)
        condition = allowed(unlimited)
        assert (condition["status"], condition["reason"]) == ("True", "NoBudgetLimit")
        assert "neither budget.daily nor budget.monthly" in condition["message"]
