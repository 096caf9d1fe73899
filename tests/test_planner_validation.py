"""Bad input raises a ValueError naming what is wrong.

Constraints that cannot all hold raise InfeasiblePlanError (a ValueError) naming constraint,
where, and amounts; so do wrong shapes and bad values in the arrays. An unknown priority
class or a negative fair-share weight raises a plain ValueError.
"""
import re

import numpy as np
import pytest

from quartermaster.planner import (AntiThrash, InfeasiblePlanError, NodeHeadroom, Problem, SwapPlanRequest,
                                   plan, plan_swaps, shortfall_weight, solve_generic)


def args(**override):
    """Two instances, two resources, feasible; override any field to break it."""
    base = dict(current=np.array([[4.0, 8.0], [2.0, 6.0]]), demand=np.array([[5.0, 7.0], [3.0, 6.0]]),
                minimum=np.array([[1.0, 2.0], [1.0, 2.0]]), maximum=np.array([[8.0, 16.0], [8.0, 16.0]]),
                capacity=np.array([10.0, 20.0]), weight=np.array([1.0, 2.0]),
                max_change=np.array([[2.0, 4.0], [2.0, 4.0]]), shortfall_cost=np.array([5.0, 5.0]),
                waste_cost=np.array([1.0, 1.0]), move_cost=np.array([0.1, 0.1]))
    base.update(override)
    return base


def with_entry(name, i, r, value):
    array = args()[name].copy()
    array[i, r] = value
    return {name: array}


CASES = [
    ("demand shape", dict(demand=np.ones((3, 2))),
     r"shape mismatch: demand has shape \(3, 2\), expected \(2, 2\)"),
    ("weight shape", dict(weight=np.ones(3)), r"shape mismatch: weight has shape \(3,\), expected \(2,\)"),
    ("capacity shape", dict(capacity=np.ones(3)), r"shape mismatch: capacity has shape \(3,\), expected \(2,\)"),
    ("1-D current", dict(current=np.ones(2)), r"shape mismatch: current must be \[instances, resources\]"),
    ("NaN demand", with_entry("demand", 1, 0, np.nan),
     r"not a finite number: demand of instance 1, resource 0 is nan"),
    ("infinite floor", with_entry("minimum", 0, 1, np.inf),
     r"not a finite number: minimum of instance 0, resource 1 is inf"),
    ("NaN capacity", dict(capacity=np.array([10.0, np.nan])),
     r"not a finite number: capacity of resource 1 is nan"),
    ("negative capacity", dict(capacity=np.array([-1.0, 20.0])),
     r"negative capacity: capacity of resource 0 is -1"),
    ("negative cost", dict(move_cost=np.array([0.1, -0.5])), r"negative move_cost: move_cost of resource 1 is -0.5"),
    ("negative weight", dict(weight=np.array([1.0, -2.0])), r"negative weight: weight of instance 1 is -2"),
    ("negative max_change", with_entry("max_change", 0, 0, -1.0),
     r"negative max_change: max_change of instance 0, resource 0 is -1"),
    ("floor above ceiling", with_entry("minimum", 1, 1, 20.0),
     r"SLA floor above ceiling: instance 1, resource 1: minimum 20 > maximum 16"),
    ("floor out of reach", with_entry("minimum", 0, 0, 7.0),
     r"SLA floor out of reach within max_change: instance 0, resource 0: minimum 7 > current 4 \+ max_change 2"),
    ("ceiling out of reach", with_entry("maximum", 0, 1, 3.0),
     r"ceiling out of reach within max_change: instance 0, resource 1: maximum 3 < current 8 - max_change 4"),
    ("floors above capacity", dict(capacity=np.array([1.5, 20.0])),
     r"SLA floors above pool capacity: resource 0: the floors sum to 2 but capacity is 1.5"),
    ("capacity out of reach", dict(capacity=np.array([10.0, 5.0])),
     r"pool capacity out of reach within max_change: resource 1: instances can shrink to 6 in total at most"
     r" but capacity is 5"),
]


@pytest.mark.parametrize("override,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_raises_a_named_error(override, message):
    with pytest.raises(InfeasiblePlanError, match=message):
        plan(**args(**override))


def test_the_error_is_a_value_error_and_counts_the_other_offenders():
    minimum = np.array([[9.0, 2.0], [9.0, 2.0]])
    with pytest.raises(ValueError, match=r"minimum 9 > maximum 8 \(and 1 more\)"):
        plan(**args(minimum=minimum))


def test_messages_use_names_when_given():
    with pytest.raises(InfeasiblePlanError, match=r"instance 'web', resource 'memory': minimum 20"):
        Problem(**args(**with_entry("minimum", 1, 1, 20.0)), instance_names=("api", "web"),
                resource_names=("cpu", "memory"))


def test_the_pool_check_tolerates_rounding_of_an_exactly_full_pool():
    current = np.full((10, 1), 0.1)
    x = plan(**args(current=current, demand=current, minimum=current, maximum=current + 1,
                    max_change=current, capacity=np.array([sum([0.1] * 10) - 1e-16]), weight=np.ones(10),
                    shortfall_cost=np.ones(1), waste_cost=np.ones(1), move_cost=np.ones(1)))
    assert np.allclose(x, 0.1)


def test_node_headroom_names_the_node():
    # Instance 1's cpu floor forces +1 (minimum 3 > current 2); its node has 0.5 free.
    p = Problem(**args(**with_entry("minimum", 1, 0, 3.0)))
    headroom = NodeHeadroom(node=np.array([0, 1]), free=np.array([[5.0, 5.0], [0.5, 5.0]]))
    with pytest.raises(InfeasiblePlanError,
                       match=r"node headroom: node 1, resource 0: its instances must grow by at least 1 "
                             r"\(floors, max_change\) but the node has 0.5 free"):
        solve_generic(p, headroom=headroom)


def test_node_headroom_shape_is_checked():
    with pytest.raises(InfeasiblePlanError, match=r"shape mismatch: node headroom needs node \[2\]"):
        solve_generic(Problem(**args()), headroom=NodeHeadroom(np.array([0]), np.ones((1, 2))))


@pytest.mark.parametrize("node", [[0, 1], [0, -2]], ids=["past the last row", "below -1"])
def test_node_headroom_node_must_index_a_row_or_be_minus_one(node):
    with pytest.raises(InfeasiblePlanError, match=r"node headroom: .* node must index its rows \(or be -1"):
        solve_generic(Problem(**args()), headroom=NodeHeadroom(np.array(node), np.ones((1, 2))))


def test_max_changes_names_the_forced_changes():
    minimum = np.array([[5.0, 9.0], [3.0, 2.0]])  # three floors above current
    with pytest.raises(InfeasiblePlanError,
                       match=r"maximum changes per plan: 3 allocations must change .* but the limit is 2"):
        solve_generic(Problem(**args(minimum=minimum)), max_changes=2)


def test_prechecks_name_the_change_limit_and_the_node_before_solving():
    # Each floor forces +1 cpu; each node alone has room, but the change limit allows one change.
    minimum = np.array([[5.0, 2.0], [3.0, 2.0]])
    headroom = NodeHeadroom(node=np.array([0, 1]), free=np.ones((2, 2)))
    with pytest.raises(InfeasiblePlanError, match=r"maximum changes per plan: 2 allocations"):
        solve_generic(Problem(**args(minimum=minimum)), headroom=headroom, max_changes=1)
    # Two instances on one node, each forced +1, node has 1.5 free in total: the check sums them.
    headroom = NodeHeadroom(node=np.array([0, 0]), free=np.array([[1.5, 9.0]]))
    with pytest.raises(InfeasiblePlanError, match=r"node 0, resource 0: .* at least 2 .* has 1.5 free"):
        solve_generic(Problem(**args(minimum=minimum)), headroom=headroom)


def test_pool_and_change_limit_infeasible_together_is_reported_by_the_lp():
    # The pool needs both instances to give up 1 cpu (max_change 1 each); one change is allowed.
    p = Problem(**args(current=np.array([[4.0, 8.0], [4.0, 6.0]]), capacity=np.array([6.0, 20.0]),
                       max_change=np.ones((2, 2))))
    assert np.allclose(solve_generic(p, max_changes=2)[:, 0], [3.0, 3.0])
    with pytest.raises(InfeasiblePlanError,
                       match=r"pool capacity, node headroom and the change limit cannot all hold together"):
        solve_generic(p, max_changes=1)


def request(**override):
    a = args()
    base = dict(instances=["api", "web"], resources=["cpu", "memory"], current=a["current"], demand=a["demand"],
                forecast_median=a["demand"], forecast_upper=a["demand"] * 1.5, minimum=a["minimum"],
                maximum=a["maximum"], max_change=a["max_change"], capacity=a["capacity"],
                priority=["high", "low"])
    base.update(override)
    return SwapPlanRequest(**base)


def test_plan_swaps_checks_forecasts_and_priorities():
    with pytest.raises(InfeasiblePlanError, match=r"shape mismatch: forecast_upper has shape \(2,\)"):
        plan_swaps(request(forecast_upper=np.ones(2)))
    with pytest.raises(InfeasiblePlanError, match=r"not a finite number: forecast_median has nan"):
        plan_swaps(request(forecast_median=np.array([[np.nan, 1.0], [1.0, 1.0]])))
    with pytest.raises(InfeasiblePlanError, match=r"shape mismatch: shortfall_cost has shape \(3,\), expected \(2,\)"):
        plan_swaps(request(shortfall_cost=[1.0, 2.0, 3.0]))
    with pytest.raises(InfeasiblePlanError, match=r"shape mismatch: 1 priorities and fair_share \(2,\)"):
        plan_swaps(request(priority=["high"], fair_share=np.ones(2)))
    with pytest.raises(ValueError, match=r"'urgent' is not a valid PriorityClass"):
        plan_swaps(request(priority=["high", "urgent"]))
    with pytest.raises(ValueError, match=r"fair-share weight must be a non-negative number, got -1"):
        shortfall_weight("low", -1.0)


def test_minimum_interval_names_the_instance_that_must_move():
    rule = AntiThrash(min_interval_seconds=300, last_swap_seconds=np.array([np.nan, 900.0]), now_seconds=1000)
    minimum = np.array([[1.0, 2.0], [3.0, 2.0]])  # web's cpu floor is above its current 2
    with pytest.raises(InfeasiblePlanError,
                       match=re.escape("minimum interval between swaps: instance 'web', resource 'cpu' was swapped "
                                       "100 s ago (interval 300 s) but must move: current 2 is outside [3, 8]")):
        plan_swaps(request(minimum=minimum, anti_thrash=rule))


@pytest.mark.parametrize("absolute", [np.ones(3), np.ones((1, 2))], ids=["wrong length", "2-D"])
def test_min_swap_absolute_shape_is_checked(absolute):
    shape = re.escape(str(absolute.shape))
    with pytest.raises(InfeasiblePlanError,
                       match=rf"shape mismatch: min_swap_absolute has shape {shape}, expected a scalar or \(2,\)"):
        plan_swaps(request(anti_thrash=AntiThrash(min_swap_absolute=absolute)))
