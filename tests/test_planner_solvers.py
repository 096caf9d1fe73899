"""The fast breakpoint solver against the generic HiGHS LP, and its own feasibility."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from quartermaster.planner import Problem, objective, plan, solve_generic, solve_separable


@st.composite
def problems(draw, max_n=6, max_r=3):
    """Small valid problems on a coarse grid, so ties, zero demands, equal bounds and
    exactly full pools come up often."""
    n = draw(st.integers(1, max_n))
    R = draw(st.integers(1, max_r))

    def grid(lo, hi):
        values = draw(st.lists(st.integers(lo, hi), min_size=n * R, max_size=n * R))
        return np.array(values, dtype=float).reshape(n, R) / 2

    def costs():
        return np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=R, max_size=R)))

    current = grid(0, 16)
    demand = grid(0, 20)
    max_change = grid(0, 8)
    minimum = np.clip(current + grid(-6, 4), 0, current + max_change)
    maximum = np.maximum(np.maximum(minimum, current + grid(-4, 6)), current - max_change)
    lower = np.maximum(minimum, current - max_change)
    upper = np.minimum(maximum, current + max_change)
    fill = np.array(draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5]), min_size=R, max_size=R)))
    capacity = lower.sum(axis=0) + fill * (upper - lower).sum(axis=0)
    weight = np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, 4.0]), min_size=n, max_size=n)))
    return Problem(current, demand, minimum, maximum, capacity, weight, max_change,
                   costs(), costs(), costs())


def assert_feasible(p: Problem, x: np.ndarray) -> None:
    assert x.shape == p.shape
    assert np.all(x >= p.lower) and np.all(x <= p.upper)
    for r in range(p.shape[1]):
        assert math.fsum(x[:, r]) <= p.capacity[r] + 1e-12 * max(1.0, p.capacity[r])


@settings(max_examples=200, deadline=None)
@given(problems())
def test_derived_box_fields_match_their_definitions(p):
    assert np.array_equal(p.must_move, (p.current < p.minimum) | (p.current > p.maximum))
    assert np.array_equal(p.top, np.minimum(p.upper, np.maximum(p.lower, np.maximum(p.demand, p.current))))
    assert np.all(p.lower <= p.top) and np.all(p.top <= p.upper)


@settings(max_examples=300, deadline=None)
@given(problems())
def test_fast_path_matches_generic_lp(p):
    fast, generic = solve_separable(p), solve_generic(p)
    assert_feasible(p, fast)
    assert objective(p, fast) == pytest.approx(objective(p, generic), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(problems(), st.data())
def test_no_feasible_perturbation_improves_the_fast_plan(p, data):
    """Moving a unit between two entries of a resource, or into free capacity, never helps."""
    x = solve_separable(p)
    n, R = p.shape
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    r = data.draw(st.integers(0, R - 1))
    step = data.draw(st.sampled_from([1e-3, 0.1, 1.0]))
    y = x.copy()
    y[i, r] += step
    if i != j:
        y[j, r] -= step
    y = np.clip(y, p.lower, p.upper)
    if math.fsum(y[:, r]) <= p.capacity[r]:
        assert objective(p, y) >= objective(p, x) - 1e-9


def test_exactly_full_pool_keeps_everyone_at_the_floor():
    current = np.array([[4.0], [4.0], [2.0]])
    minimum = np.array([[3.0], [2.0], [1.0]])
    p = Problem(current, demand=np.full((3, 1), 10.0), minimum=minimum, maximum=np.full((3, 1), 20.0),
                capacity=np.array([6.0]), weight=np.ones(3), max_change=np.full((3, 1), 5.0),
                shortfall_cost=np.array([1.0]), waste_cost=np.array([1.0]), move_cost=np.array([0.1]))
    assert np.array_equal(solve_separable(p), minimum)


def test_tied_slopes_split_the_pool_without_overfilling():
    n = 5
    p = Problem(current=np.zeros((n, 1)), demand=np.full((n, 1), 3.0), minimum=np.zeros((n, 1)),
                maximum=np.full((n, 1), 10.0), capacity=np.array([7.0]), weight=np.ones(n),
                max_change=np.full((n, 1), 10.0), shortfall_cost=np.array([2.0]),
                waste_cost=np.array([1.0]), move_cost=np.array([0.5]))
    x = solve_separable(p)
    assert math.fsum(x[:, 0]) == 7.0
    assert objective(p, x) == pytest.approx((15 - 7) * 2.0 + 7 * 0.5)


def test_priority_wins_a_contested_pool():
    p = Problem(current=np.array([[2.0], [2.0]]), demand=np.array([[4.0], [4.0]]),
                minimum=np.zeros((2, 1)), maximum=np.full((2, 1), 8.0), capacity=np.array([5.0]),
                weight=np.array([1.0, 8.0]), max_change=np.full((2, 1), 4.0),
                shortfall_cost=np.array([1.0]), waste_cost=np.array([0.1]), move_cost=np.array([0.01]))
    assert solve_separable(p).ravel().tolist() == [1.0, 4.0]


def test_unbounded_ceiling_and_capacity_are_allowed():
    p = Problem(current=np.array([[1.0, 1.0]]), demand=np.array([[5.0, 0.0]]), minimum=np.zeros((1, 2)),
                maximum=np.full((1, 2), np.inf), capacity=np.array([np.inf, 3.0]), weight=np.ones(1),
                max_change=np.full((1, 2), np.inf), shortfall_cost=np.ones(2), waste_cost=np.ones(2),
                move_cost=np.zeros(2))
    assert solve_separable(p).tolist() == [[5.0, 0.0]]
    assert objective(p, solve_generic(p)) == pytest.approx(0.0, abs=1e-9)


def test_benchmark_shaped_problem_is_optimal_and_deterministic():
    rng = np.random.default_rng(7)
    n, R = 400, 3
    current = rng.uniform(1, 16, (n, R))
    args = dict(current=current, demand=current * rng.lognormal(0, 0.5, (n, R)),
                minimum=current * 0.3, maximum=current * 3, capacity=current.sum(axis=0) * 0.95,
                weight=rng.choice([1.0, 2.0, 4.0, 8.0], n), max_change=current * 0.5,
                shortfall_cost=np.array([5.0, 7.0, 9.0]), waste_cost=np.ones(R), move_cost=np.full(R, 0.1))
    x = plan(**args)
    p = Problem(**args)
    assert_feasible(p, x)
    assert objective(p, x) <= objective(p, solve_generic(p)) * (1 + 1e-9)
    assert np.array_equal(x, plan(**args))


@pytest.mark.parametrize("seed", range(20))
def test_a_binding_pool_is_never_exceeded_even_by_an_ulp(seed):
    rng = np.random.default_rng(seed)
    n = 1000
    current = rng.uniform(0.1, 16, (n, 1))
    p = Problem(current=current, demand=current * rng.lognormal(0.3, 0.5, (n, 1)), minimum=current * 0.3,
                maximum=current * 3, capacity=current.sum(axis=0) * rng.uniform(0.9, 1.0),
                weight=rng.choice([1.0, 2.0, 4.0, 8.0], n), max_change=current * 0.5,
                shortfall_cost=np.array([5.0]), waste_cost=np.array([1.0]), move_cost=np.array([0.1]))
    x = solve_separable(p)
    assert math.fsum(x[:, 0]) <= p.capacity[0]
    assert math.fsum(x[:, 0]) >= p.capacity[0] * (1 - 1e-12)  # and the pool is used, the demand being higher


def test_an_empty_pool_plans_nothing():
    empty = np.zeros((0, 2))
    p = Problem(empty, empty, empty, empty, np.ones(2), np.zeros(0), empty, np.ones(2), np.ones(2), np.ones(2))
    assert solve_separable(p).shape == (0, 2)
    assert solve_generic(p, max_changes=0).shape == (0, 2)
