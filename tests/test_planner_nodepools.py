"""Node-pool sizing ahead of demand and the cheapest fitting instance type (pure)."""
import pytest

from quartermaster.planner.nodepools import (
    NodePoolDemand, NodePoolRules, NoFittingInstanceType, Offer, cheapest_fitting, first_fit_decreasing,
    pool_instance_type, size_node_pool, spot_share)
from quartermaster.providers.interface import InstanceType, table_instance_types

GIB = 2.0**30
NODE = {"cpu": 8.0, "memory": 32 * GIB, "pods": 110.0}
RULES = NodePoolRules(min_size=1, max_size=20, headroom=0.15, stabilisation_seconds=600)


def demand(cpu=0.0, memory=0.0, pending=(), minutes=25):
    return NodePoolDemand({"cpu": cpu, "memory": memory}, 0.9, minutes * 60, tuple(pending))


def test_forecast_peak_with_headroom_sets_the_size_and_says_why():
    decision = size_node_pool(demand(cpu=41, memory=40 * GIB), NODE, current=5, rules=RULES, now=0)
    # 41 cores / (8 × 0.85 = 6.8 usable) = 6.03 → 7; memory 40 / 27.2 GiB → 2.
    assert (decision.size, decision.binding) == (7, "cpu")
    assert decision.reasoning == "cpu p90 forecast peaks at 41 cores in 25 min; 8 cores a node at 85% → 7 nodes; now 5"


def test_the_binding_resource_is_the_one_needing_most_nodes():
    decision = size_node_pool(demand(cpu=4, memory=100 * GIB), NODE, current=2, rules=RULES, now=0)
    assert (decision.size, decision.binding) == (4, "memory")  # 100 / 27.2 GiB = 3.7 → 4
    assert "memory p90 forecast peaks at 100Gi" in decision.reasoning


def test_pending_pods_add_first_fit_decreasing_nodes_above_the_current_ones():
    pending = [{"cpu": 5.0}, {"cpu": 5.0}, {"cpu": 3.0}, {"cpu": 3.0}]  # FFD: [5, 3], [5, 3]
    decision = size_node_pool(demand(cpu=20), NODE, current=3, rules=RULES, now=0)
    assert decision.size == 3  # the forecast alone: 20 / 6.8 → 3
    decision = size_node_pool(demand(cpu=20, pending=pending), NODE, current=3, rules=RULES, now=0)
    assert decision.size == 5 and "4 pending pods pack onto 2 more nodes → 5" in decision.reasoning


def test_first_fit_decreasing_packs_largest_first_and_counts_pod_slots():
    # First fit in the given order would need 3 nodes ([3,3], [5], [5]); largest first needs 2.
    assert first_fit_decreasing([{"cpu": 3.0}, {"cpu": 3.0}, {"cpu": 5.0}, {"cpu": 5.0}], NODE) == (2, ())
    # A node takes at most `pods` pods, however small they are.
    assert first_fit_decreasing([{"cpu": 0.01}] * 5, {"cpu": 8.0, "pods": 2.0}) == (3, ())


def test_a_pod_larger_than_a_node_is_reported_not_counted():
    pending = [{"cpu": 2.0}, {"cpu": 12.0}]
    decision = size_node_pool(demand(cpu=1, pending=pending), NODE, current=2, rules=RULES, now=0)
    assert decision.size == 3 and decision.unplaceable == (1,)
    assert "1 pending pods are larger than a node" in decision.reasoning


def test_scale_down_is_held_at_the_highest_recommendation_inside_the_window():
    first = size_node_pool(demand(cpu=41), NODE, current=5, rules=RULES, now=0)
    assert first.size == 7
    dip = size_node_pool(demand(cpu=10), NODE, current=7, rules=RULES, now=300, recent=first.recommendations)
    assert dip.size == 7 and "held at 7 by the highest recommendation of the last 10 min" in dip.reasoning
    later = size_node_pool(demand(cpu=10), NODE, current=7, rules=RULES, now=700, recent=dip.recommendations)
    assert later.size == 2  # the 7 of t=0 has left the 10-minute window; 10 / 6.8 → 2


def test_min_and_max_bound_the_size():
    assert size_node_pool(demand(cpu=0), NODE, 0, RULES, 0).size == 1
    capped = size_node_pool(demand(cpu=1000), NODE, 5, RULES, 0)
    assert capped.size == 20 and "capped at the maximum 20" in capped.reasoning


def test_a_forecast_resource_the_node_lacks_does_not_size_the_pool():
    decision = size_node_pool(NodePoolDemand({"cpu": 1.0, "nvidia.com/gpu": 2.0}, 0.9, 60), NODE, 3, RULES, 0)
    assert decision.binding is None and "nvidia.com/gpu is forecast but a node has none" in decision.reasoning


def test_rules_refuse_inverted_bounds_and_full_headroom():
    with pytest.raises(ValueError, match="min_size <= max_size"):
        NodePoolRules(min_size=3, max_size=2)
    with pytest.raises(ValueError, match="headroom"):
        NodePoolRules(min_size=0, max_size=2, headroom=1.0)


SMALL = InstanceType("small", {"cpu": 2.0, "memory": 8 * GIB}, on_demand_price=0.10, spot_price=0.03)
BIG = InstanceType("big", {"cpu": 8.0, "memory": 32 * GIB}, on_demand_price=0.36, spot_price=0.20)
GPU = InstanceType("gpu", {"cpu": 4.0, "memory": 16 * GIB, "nvidia.com/gpu": 1.0}, on_demand_price=0.50)


def test_cheapest_fitting_compares_the_whole_pool_price_across_providers():
    offers = [Offer("a", SMALL), Offer("b", BIG)]
    # 13 cores: small needs ceil(13 / 1.7) = 8 nodes = $0.80/h, big ceil(13 / 6.8) = 2 = $0.72/h.
    choice = cheapest_fitting({"cpu": 13.0}, offers, headroom=0.15)
    assert (choice.offer.instance_type.name, choice.nodes) == ("big", 2)
    assert choice.price_per_hour == pytest.approx(0.72)
    assert choice.reasoning == ("big on b: 2 nodes × $0.360/h = $0.72/h ($0.0529/h per usable core);"
                                " next small on a at $0.80/h")


def test_a_spot_share_changes_the_choice():
    offers = [Offer("a", SMALL), Offer("b", BIG)]
    # All spot: small 8 × 0.03 = $0.24/h, big 2 × 0.20 = $0.40/h.
    choice = cheapest_fitting({"cpu": 13.0}, offers, headroom=0.15, spot_share=1.0)
    assert choice.offer.instance_type.name == "small" and choice.price_per_hour == pytest.approx(0.24)
    assert "at 100% spot" in choice.reasoning


def test_only_types_that_hold_each_pod_and_the_demanded_resources_fit():
    offers = [Offer("a", SMALL), Offer("b", BIG), Offer("c", GPU)]
    # A 3-core pod fits neither small node (2 cores): the dearer gpu type is the cheapest that holds it.
    assert cheapest_fitting({"cpu": 1.0}, [Offer("a", SMALL), Offer("c", GPU)], 0.15,
                            pods=[{"cpu": 3.0}]).offer.instance_type.name == "gpu"
    assert cheapest_fitting({"cpu": 1.0}, offers, 0.15, pods=[{"cpu": 6.0}]).offer.instance_type.name == "big"
    assert cheapest_fitting({"cpu": 1.0, "nvidia.com/gpu": 1.0}, offers, 0.0).offer.provider == "c"
    with pytest.raises(NoFittingInstanceType, match="none of 3 instance types fits"):
        cheapest_fitting({"cpu": 1.0}, offers, 0.15, pods=[{"cpu": 1.0}, {"cpu": 16.0}])


def test_the_repository_table_has_prices_and_allocatable_for_each_catalogue():
    for catalogue in ("aws", "gcp", "azure"):
        kinds = table_instance_types(catalogue)
        assert len(kinds) >= 4
        for kind in kinds:
            assert kind.allocatable["cpu"] > 0 and kind.allocatable["memory"] > GIB and kind.allocatable["pods"] > 0
            assert 0 < kind.spot_price < kind.on_demand_price, kind.name
        assert any(kind.allocatable["nvidia.com/gpu"] >= 1 for kind in kinds)


def test_pending_pods_fill_the_room_on_nodes_there_are_before_new_ones():
    # a node just added (6 cores free) takes two of the pending pods: one more node, not two
    pending = [{"cpu": 3.0}] * 3
    decision = size_node_pool(demand(pending=pending), NODE, current=3, rules=RULES, now=0)
    assert decision.size == 5
    decision = size_node_pool(NodePoolDemand({}, 0.9, 0, tuple(pending), free=({"cpu": 6.0, "pods": 100.0},)),
                              NODE, current=3, rules=RULES, now=0)
    assert decision.size == 4 and "3 pending pods pack onto 1 more nodes → 4" in decision.reasoning
    assert first_fit_decreasing(pending, NODE, free=[{"cpu": 9.0, "pods": 100.0}] * 2) == (0, ())


def test_the_pods_held_floor_a_shrink_so_that_a_drained_nodes_pods_fit_the_rest():
    # three 5-core pods need three 8-core nodes, whatever the forecast says
    decision = size_node_pool(NodePoolDemand({"cpu": 1.0}, 0.9, 0, placed=[{"cpu": 5.0}] * 3),
                              NODE, current=4, rules=RULES, now=0)
    assert decision.size == 3 and "the 3 pods held pack onto 3 nodes → 3" in decision.reasoning
    # ...but FFD's count never grows the pool by itself
    decision = size_node_pool(NodePoolDemand({}, 0.9, 0, placed=[{"cpu": 5.0}] * 3), NODE, current=2,
                              rules=RULES, now=0)
    assert decision.size == 2


def test_a_pools_instance_type_is_the_cheapest_for_its_peak_or_its_pods_whichever_asks_more():
    offers = [Offer("kwok", SMALL), Offer("kwok", BIG)]
    # forecast 13 cores: big (2 × $0.36) beats small (8 × $0.10), as above
    assert pool_instance_type(demand(cpu=13.0), offers, 0.15).offer.instance_type.name == "big"
    # no forecast; three pending pods of 1 core: 3 cores → small 2 × $0.10 beats big 1 × $0.36
    pods = NodePoolDemand({}, 0.9, 0, pending=({"cpu": 1.0},) * 3)
    choice = pool_instance_type(pods, offers, 0.15)
    assert (choice.offer.instance_type.name, choice.nodes, choice.price_per_hour) == ("small", 2, pytest.approx(0.2))
    # the pods held count with the pending ones, and a 3-core pod rules small out
    held = NodePoolDemand({"cpu": 1.0}, 0.9, 0, pending=({"cpu": 1.0},), placed=({"cpu": 3.0},))
    assert pool_instance_type(held, offers, 0.15).offer.instance_type.name == "big"
    # a forecast below the pods' requests: the pods set it (4 cores: small 3 × $0.10)
    assert pool_instance_type(NodePoolDemand({"cpu": 0.5}, 0.9, 0, pending=({"cpu": 1.0},) * 4), offers,
                              0.15).nodes == 3


def test_spot_falls_back_to_on_demand_for_the_wait_after_a_refusal_and_is_tried_again_after_it():
    at_target = spot_share(60, None, retry_seconds=600, now=1000)
    assert (at_target.percentage, at_target.falling_back, at_target.message) == (60, False, "60% of new nodes spot")
    refused = (1000, "spot capacity refused: InsufficientInstanceCapacity")
    fallback = spot_share(60, refused, 600, now=1000)
    assert (fallback.percentage, fallback.falling_back, fallback.retry_at) == (0, True, 1600)
    assert fallback.message == ("spot capacity refused: InsufficientInstanceCapacity: on-demand only, "
                                "spot tried again 10 min after it")
    # the same refusal read later: the wait runs from its own time, not from when it was read
    assert spot_share(60, refused, 600, now=1599) == fallback
    again = spot_share(60, refused, 600, now=1600)
    assert (again.percentage, again.falling_back, again.retry_at) == (60, False, None)
    assert again.message == "60% of new nodes spot again, after the fallback"
    # refused once more when tried: the wait starts from that refusal
    assert spot_share(60, (1605, "2 spot nodes interrupted"), 600, now=1610).retry_at == 2205
    # no spot share asked for: nothing to fall back from
    assert spot_share(0, refused, 600, now=1000).falling_back is False


def test_a_pool_whose_spot_share_the_provider_keeps_says_it_cannot_fall_back_and_keeps_its_share():
    fixed = "a managed instance group's instances are all spot or none, as its instance template says"
    decision = spot_share(100, (1000, "1 spot nodes interrupted (n-1)"), 600, now=1100, fixed=fixed)
    assert (decision.percentage, decision.falling_back, decision.retry_at) == (100, True, 1600)
    assert decision.message == (f"1 spot nodes interrupted (n-1): {fixed}, so its new nodes cannot fall back to "
                                "on-demand: they stay 100% spot, and this is said until 10 min after it")
    assert spot_share(100, (1000, "1 spot nodes interrupted (n-1)"), 600, now=1600, fixed=fixed).falling_back is False