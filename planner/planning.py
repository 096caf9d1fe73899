"""The planner's entry points: the benchmark contract `plan` and the operator's `plan_swaps`."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .antithrash import AntiThrash, hold_cooling_down, settle_small_changes
from .generic import NodeHeadroom, solve_generic
from .model import InfeasiblePlanError, Problem, objective
from .priority import PriorityClass, shortfall_weight
from .risk import plan_risk, swap_risk
from .separable import solve_separable
from .swaps import derive_transfers


def plan(current, demand, minimum, maximum, capacity, weight, max_change,
         shortfall_cost, waste_cost, move_cost) -> np.ndarray:
    """The optimal allocation [n, R] of the model in `model`'s docstring (fast exact path).

    Raises InfeasiblePlanError (a ValueError) naming the constraint, resource and amounts
    when no allocation is feasible, or naming the array when one has the wrong shape or a
    non-finite or negative value.
    """
    return solve_separable(Problem(current, demand, minimum, maximum, capacity, weight, max_change,
                                   shortfall_cost, waste_cost, move_cost))


@dataclass(frozen=True)
class Swap:
    """Move `amount` of `resource` from `donor` to `recipient`; None is the pool's free capacity."""

    donor: str | None
    recipient: str | None
    resource: str
    amount: float
    risk: float


@dataclass(frozen=True, eq=False)
class SwapPlanRequest:
    """Everything one SwapPlan needs. Arrays are [instances, resources] unless noted.

    demand is the forecast at the plan's quantile; forecast_median and forecast_upper give
    the spread that risk is measured from. Costs and min_swap_absolute may be scalars or [R].
    max_swaps bounds the changed allocations, hence the swaps (see `generic`); it and
    node_headroom switch from the fast solver to the HiGHS one.
    """

    instances: Sequence[str]
    resources: Sequence[str]
    current: np.ndarray
    demand: np.ndarray
    forecast_median: np.ndarray
    forecast_upper: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    max_change: np.ndarray
    capacity: np.ndarray                      # [R]
    priority: Sequence[PriorityClass | str]   # [n]
    fair_share: np.ndarray | None = None      # [n], default 1
    shortfall_cost: np.ndarray | float = 1.0
    waste_cost: np.ndarray | float = 0.1
    move_cost: np.ndarray | float = 0.01
    anti_thrash: AntiThrash = field(default_factory=AntiThrash)
    node_headroom: NodeHeadroom | None = None
    max_swaps: int | None = None
    risk_threshold: float = 0.5


@dataclass(frozen=True, eq=False)
class SwapPlanResult:
    """A plan: the new allocation [n, R], the swaps that reach it, and what it is worth.

    held lists the instances kept as they are because they were swapped too recently.
    """

    allocation: np.ndarray
    swaps: tuple[Swap, ...]
    objective_before: float
    objective_after: float
    risk: float
    needs_approval: bool
    held: tuple[str, ...]


def plan_swaps(request: SwapPlanRequest) -> SwapPlanResult:
    """Plan one pool: optimal allocation under all constraints, then swaps, risk and approval."""
    q = request
    n, R = len(q.instances), len(q.resources)
    priority = [PriorityClass(p) for p in q.priority]
    fair_share = np.ones(n) if q.fair_share is None else np.asarray(q.fair_share, dtype=np.float64)
    if len(priority) != n or fair_share.shape != (n,):
        raise InfeasiblePlanError(
            f"shape mismatch: {len(priority)} priorities and fair_share {fair_share.shape} for {n} instances")
    weight = np.array([shortfall_weight(p, f) for p, f in zip(priority, fair_share, strict=True)])
    per_resource = {name: _per_resource(getattr(q, name), R) for name in ("shortfall_cost", "waste_cost", "move_cost")}
    problem = Problem(q.current, q.demand, q.minimum, q.maximum, q.capacity, weight, q.max_change,
                      **per_resource, instance_names=tuple(q.instances), resource_names=tuple(q.resources))
    median, upper = _forecast(q, problem.shape)

    if q.node_headroom is None and q.max_swaps is None:
        solve = solve_separable
    else:
        solve = functools.partial(solve_generic, headroom=q.node_headroom, max_changes=q.max_swaps)
    held_problem, cooling = hold_cooling_down(problem, q.anti_thrash)
    allocation = settle_small_changes(held_problem, solve(held_problem), q.anti_thrash, solve)

    transfers = derive_transfers(problem.current, allocation)
    risk_factor = np.array([p.risk_factor for p in priority])
    risks = swap_risk(transfers, problem.current, allocation, median, upper, risk_factor)
    parties = (*q.instances, None)  # POOL (-1) indexes the trailing None
    swaps = tuple(Swap(parties[d], parties[c], q.resources[r], a, k) for d, c, r, a, k in zip(
        transfers.donor.tolist(), transfers.recipient.tolist(), transfers.resource.tolist(),
        transfers.amount.tolist(), risks.tolist(), strict=True))
    total_risk = plan_risk(risks)
    return SwapPlanResult(
        allocation=allocation, swaps=swaps,
        objective_before=objective(problem, problem.current), objective_after=objective(problem, allocation),
        risk=total_risk, needs_approval=total_risk > q.risk_threshold,
        held=tuple(q.instances[i] for i in np.flatnonzero(cooling)))


def _per_resource(cost, count: int) -> np.ndarray:
    """A cost for each resource: a scalar stands for all of them; any other shape is left
    for Problem to check, so a wrong one is named there."""
    return np.full(count, cost, dtype=np.float64) if np.ndim(cost) == 0 else np.asarray(cost, dtype=np.float64)


def _forecast(q: SwapPlanRequest, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    median = np.asarray(q.forecast_median, dtype=np.float64)
    upper = np.asarray(q.forecast_upper, dtype=np.float64)
    for label, values in (("forecast_median", median), ("forecast_upper", upper)):
        if values.shape != shape:
            raise InfeasiblePlanError(f"shape mismatch: {label} has shape {values.shape}, expected {shape}")
        if not np.isfinite(values).all():
            raise InfeasiblePlanError(f"not a finite number: {label} has {values[~np.isfinite(values)][0]}")
    return median, upper
