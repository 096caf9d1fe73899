"""From allocations to swaps: conservation, few transfers, risk, anti-thrash, the operator entry point."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from test_planner_solvers import problems

from quartermaster.planner import (AntiThrash, NodeHeadroom, PriorityClass, Problem, SwapPlanRequest, objective,
                                   plan_swaps, shortfall_weight, solve_generic, solve_separable)
from quartermaster.planner import planning
from quartermaster.planner.antithrash import hold_cooling_down, settle_small_changes
from quartermaster.planner.risk import plan_risk, swap_risk
from quartermaster.planner.swaps import POOL, derive_transfers


def net_flows(transfers, n, R):
    """[n + 1, R] what each party (the pool last) gave minus what it received."""
    flow = np.zeros((n + 1, R))
    np.add.at(flow, (transfers.donor, transfers.resource), transfers.amount)
    np.add.at(flow, (transfers.recipient, transfers.resource), -transfers.amount)
    return flow


allocations = st.integers(1, 8).flatmap(lambda n: st.integers(1, 3).flatmap(lambda R: st.tuples(
    *(st.lists(st.integers(0, 40).map(lambda v: v / 4), min_size=n * R, max_size=n * R).map(
        lambda v: np.reshape(v, (n, R))) for _ in range(2)))))


@settings(max_examples=300, deadline=None)
@given(allocations)
def test_transfers_conserve_every_amount(pair):
    current, allocation = pair
    n, R = current.shape
    t = derive_transfers(current, allocation)
    flow = net_flows(t, n, R)
    assert np.allclose(flow[:n], current - allocation, atol=1e-9)
    assert np.allclose(flow[n], (allocation - current).sum(axis=0), atol=1e-9)  # the pool balances
    assert np.all(t.amount > 0) and np.all(t.donor != t.recipient)
    for r in range(R):
        parties = np.count_nonzero(allocation[:, r] != current[:, r]) + (flow[n, r] != 0)
        assert np.count_nonzero(t.resource == r) <= max(parties - 1, 0)


def test_largest_amounts_go_first_and_the_pool_takes_the_surplus():
    current = np.array([[6.0], [1.0], [1.0], [1.0]])
    allocation = np.array([[1.0], [4.0], [2.0], [1.0]])  # 5 released, 4 taken: 1 back to the pool
    t = derive_transfers(current, allocation)
    assert list(zip(t.donor, t.recipient, t.amount, strict=True)) == [(0, 1, 3.0), (0, 2, 1.0), (0, POOL, 1.0)]


def test_the_pool_gives_when_the_plan_grows():
    t = derive_transfers(np.array([[1.0], [1.0]]), np.array([[2.5], [1.0]]))
    assert list(zip(t.donor, t.recipient, t.amount, strict=True)) == [(POOL, 0, 1.5)]


def risk_of(amount, donor_priority, spread, recipient=1):
    t = derive_transfers(np.array([[4.0], [4.0]]), np.array([[4.0 - amount], [4.0 + amount]]))
    median = np.full((2, 1), 4.0)
    factors = np.array([PriorityClass(donor_priority).risk_factor, PriorityClass.LOW.risk_factor])
    return swap_risk(t, np.array([[4.0], [4.0]]), np.array([[4.0 - amount], [4.0 + amount]]),
                     median, median + spread, factors)[0]


def test_swap_risk_grows_with_spread_priority_and_size():
    assert risk_of(1.0, "critical", 0.0) == 0.0
    assert 0 < risk_of(1.0, "low", 2.0) < risk_of(1.0, "critical", 2.0) < 1
    assert risk_of(1.0, "normal", 2.0) < risk_of(3.0, "normal", 2.0)
    assert risk_of(1.0, "normal", 1.0) < risk_of(1.0, "normal", 4.0)


def test_the_pool_carries_no_risk():
    t = derive_transfers(np.array([[1.0]]), np.array([[3.0]]))
    ones = np.ones((1, 1))
    only_recipient = swap_risk(t, ones, 3 * ones, ones, 2 * ones, np.array([1.0]))
    assert only_recipient[0] == pytest.approx(1.0 * 0.5 * (2 / 3))


def test_plan_risk_is_the_riskiest_swap_and_does_not_grow_with_plan_size():
    assert plan_risk(np.array([])) == 0.0
    assert plan_risk(np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert plan_risk(np.full(10_000, 0.01)) == pytest.approx(0.01)
    assert plan_risk(np.array([0.1, 1.0])) == 1.0


def test_priority_classes_map_to_weights():
    assert [shortfall_weight(p) for p in ("critical", "high", "normal", "low")] == [8.0, 4.0, 2.0, 1.0]
    assert shortfall_weight(PriorityClass.HIGH, fair_share=0.5) == 2.0
    assert PriorityClass.CRITICAL.risk_factor == 1.0 and PriorityClass.LOW.risk_factor == 0.125


def test_cooling_down_treats_nan_as_never():
    rule = AntiThrash(min_interval_seconds=60, last_swap_seconds=np.array([np.nan, 950.0, 900.0]),
                      now_seconds=1000)
    assert rule.cooling_down(3).tolist() == [False, True, False]


def test_nothing_cooling_down_leaves_the_problem_as_it_is():
    p = operator_request()
    problem = Problem(p.current, p.demand, p.minimum, p.maximum, p.capacity, np.ones(12),
                      p.max_change, np.ones(2), np.ones(2), np.ones(2))
    rule = AntiThrash(min_interval_seconds=60, last_swap_seconds=np.full(12, 100.0), now_seconds=1000)
    held, cooling = hold_cooling_down(problem, rule)
    assert held is problem and not cooling.any()
    held, cooling = hold_cooling_down(problem, dataclasses.replace(rule, now_seconds=120))
    assert cooling.all() and np.all(held.upper == problem.current) and np.all(held.lower == problem.current)


@settings(max_examples=60, deadline=None)
@given(problems(max_n=5, max_r=2), st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0.0, 0.25]))
def test_no_instance_moves_by_less_than_the_minimum_unless_forced(p, absolute, relative):
    rule = AntiThrash(min_swap_absolute=absolute, min_swap_relative=relative)
    x = settle_small_changes(p, solve_separable(p), rule, solve_separable)
    small = rule.too_small(p.current, x)
    forced = (p.current < p.minimum) | (p.current > p.maximum)
    # Allowed exceptions: forced entries, and small releases the pool cannot do without
    # while everything unchanged stays unchanged.
    release = small & (x < p.current)
    pool_needs = np.where(release | (x == p.current), p.current, p.lower).sum(axis=0) > p.capacity
    assert not np.any(small & ~forced & ~(release & pool_needs))
    assert np.all(x >= p.lower) and np.all(x <= p.upper) and np.all(x.sum(axis=0) <= p.capacity + 1e-9)


@settings(max_examples=80, deadline=None)
@given(problems(max_n=5, max_r=2), st.data())
def test_generic_path_honours_node_headroom_and_the_change_limit(p, data):
    n, R = p.shape
    nodes = data.draw(st.integers(1, 3))
    node = np.array(data.draw(st.lists(st.integers(-1, nodes - 1), min_size=n, max_size=n)))
    forced = np.zeros((nodes, R))
    np.add.at(forced, node[node >= 0], (p.lower - p.current)[node >= 0])
    free = forced + data.draw(st.sampled_from([0.0, 0.5, 2.0]))  # sometimes exactly tight
    must_change = int(((p.current < p.lower) | (p.current > p.upper)).sum())
    limit = must_change + data.draw(st.integers(0, 2))
    try:
        x = solve_generic(p, headroom=NodeHeadroom(node, free), max_changes=limit)
    except ValueError as error:  # pool and change limit clash: only the LP can tell
        assert "cannot all hold together" in str(error)
        return
    used = np.zeros((nodes, R))
    np.add.at(used, node[node >= 0], (x - p.current)[node >= 0])
    assert np.all(used <= free + 1e-7)
    assert np.count_nonzero(np.abs(x - p.current) > 1e-9) <= limit
    assert objective(p, x) >= objective(p, solve_separable(p)) - 1e-7


@settings(max_examples=60, deadline=None)
@given(problems(max_n=5, max_r=2))
def test_loose_extended_constraints_change_nothing(p):
    loose = NodeHeadroom(np.zeros(p.shape[0], dtype=int), np.full((1, p.shape[1]), 1e6))
    x = solve_generic(p, headroom=loose, max_changes=p.current.size)
    assert objective(p, x) == pytest.approx(objective(p, solve_separable(p)), rel=1e-9, abs=1e-9)


def operator_request(**override):
    rng = np.random.default_rng(3)
    n, R = 12, 2
    current = rng.uniform(1, 8, (n, R))
    median = current * rng.lognormal(0, 0.6, (n, R))
    base = dict(instances=[f"w{i}" for i in range(n)], resources=["cpu", "memory"], current=current,
                demand=median * 1.2, forecast_median=median, forecast_upper=median * 1.2,
                minimum=current * 0.3, maximum=current * 3, max_change=current, capacity=current.sum(axis=0),
                priority=["critical", "high", "normal", "low"] * 3, shortfall_cost=[5.0, 3.0], waste_cost=0.5)
    base.update(override)
    return SwapPlanRequest(**base)


def test_plan_swaps_reaches_its_allocation_and_improves_the_objective():
    q = operator_request()
    result = plan_swaps(q)
    rebuilt = q.current.copy()
    for swap in result.swaps:
        r = q.resources.index(swap.resource)
        if swap.donor is not None:
            rebuilt[q.instances.index(swap.donor), r] -= swap.amount
        if swap.recipient is not None:
            rebuilt[q.instances.index(swap.recipient), r] += swap.amount
    assert result.swaps and np.allclose(rebuilt, result.allocation, atol=1e-9)
    assert result.objective_after < result.objective_before
    assert result.risk == pytest.approx(plan_risk(np.array([s.risk for s in result.swaps])))
    assert result.needs_approval == (result.risk > q.risk_threshold)
    assert plan_swaps(dataclasses.replace(q, risk_threshold=result.risk / 2)).needs_approval
    assert not plan_swaps(dataclasses.replace(q, risk_threshold=result.risk)).needs_approval


def test_plan_swaps_holds_recently_swapped_instances_and_small_changes():
    last = np.full(12, np.nan)
    last[[0, 5]] = 950.0
    rule = AntiThrash(min_swap_absolute=np.array([0.5, 1.0]), min_swap_relative=0.2, min_interval_seconds=120,
                      last_swap_seconds=last, now_seconds=1000)
    q = operator_request(anti_thrash=rule)
    result = plan_swaps(q)
    assert result.held == ("w0", "w5")
    change = np.abs(result.allocation - q.current)
    assert np.all(change[[0, 5]] == 0)
    moved = change > 0
    assert moved.any() and np.all(change[moved] >= np.maximum([0.5, 1.0], 0.2 * q.current)[moved])


def test_plan_swaps_with_a_swap_limit_uses_the_generic_path(monkeypatch):
    calls = []

    def spy(problem, headroom=None, max_changes=None):
        calls.append((headroom, max_changes))
        return solve_generic(problem, headroom=headroom, max_changes=max_changes)

    monkeypatch.setattr(planning, "solve_generic", spy)
    headroom = NodeHeadroom(np.arange(12) % 3, np.full((3, 2), 3.0))
    q = operator_request(max_swaps=4, node_headroom=headroom)
    result = plan_swaps(q)
    assert calls and all(h is headroom and k == 4 for h, k in calls)
    assert 0 < len(result.swaps) <= 4
    used = np.zeros((3, 2))
    np.add.at(used, headroom.node, result.allocation - q.current)
    assert np.all(used <= headroom.free + 1e-7)
    calls.clear()
    assert result.objective_after >= plan_swaps(operator_request()).objective_after - 1e-9
    assert not calls  # without the extended constraints the fast path plans
