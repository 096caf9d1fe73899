"""Swap planner: moves capacity between a pool's workloads ahead of forecast need.

Pure code (numpy/scipy, no I/O); the same inputs always give the same plan.

The model (see `model`): per instance i and resource r choose the allocation x[i, r] that
minimises weighted shortfall against demand, waste above demand and the size of moves,
within SLA floors and ceilings, a maximum change per instance, and the pool's capacity.

Entry points
------------
plan(current, demand, minimum, maximum, capacity, weight, max_change,
     shortfall_cost, waste_cost, move_cost) -> ndarray[n, R]
    The benchmark contract: the exactly optimal allocation, by the fast breakpoint solver
    (`separable`). Arrays [n, R] per instance, [R] capacity and costs, [n] weight.

plan_swaps(SwapPlanRequest) -> SwapPlanResult
    What a SwapPlan handler will call (there is none yet). Takes names, forecasts (demand
    at the plan's quantile, median and upper for risk), limits, priority classes and
    fair-share weights, costs, `AntiThrash` rules, optional `NodeHeadroom` and `max_swaps`
    (these two use the HiGHS path, `generic`), and a risk threshold. Returns the
    allocation, the swaps (`Swap(donor, recipient, resource, amount, risk)`, None standing
    for the pool's free capacity), objective before/after, plan risk, needs_approval
    (risk > threshold) and the instances held by the minimum interval.
    The SwapPlan CRD does not expose max_swaps, NodeHeadroom, the minimum swap size
    (min_swap_absolute / min_swap_relative) or risk_threshold yet; only the planner takes them.

Problem(current, demand, minimum, maximum, capacity, weight, max_change, shortfall_cost,
        waste_cost, move_cost, instance_names=None, resource_names=None)
    The validated model; raises on construction when infeasible. Solve it with
    solve_separable(problem) -> ndarray[n, R]          (fast, exact; the model as is) or
    solve_generic(problem, headroom=None, max_changes=None) -> ndarray[n, R]
                                                        (HiGHS; extended constraints).
    objective(problem, x) -> float evaluates an allocation.

Risk (see `risk`): per swap party, priority risk factor x forecast uncertainty
(spread / (spread + |median|)) x the share of its allocation moved; swap risk
1 - (1 - donor)(1 - recipient); plan risk is the riskiest swap's.

shortfall_weight(priority, fair_share=1.0) -> float
    The model's weight for a priority class (critical 8, high 4, normal 2, low 1) times
    the fair-share weight.

Errors: malformed arguments raise ValueError naming the argument. An unknown priority
class or a negative/NaN fair-share weight raises a plain ValueError; a wrong shape (model
arrays, forecasts, min_swap_absolute, last_swap_seconds, NodeHeadroom), a non-finite value
(model arrays, forecasts, NodeHeadroom.free), a negative one (capacity, max_change, weight,
costs) or a node index out of range raises InfeasiblePlanError (a ValueError subclass).
InfeasiblePlanError is also, and mainly, what constraints that cannot all be met raise;
then its message names the constraint, the instance and/or resource and the amounts.
`solve_generic` raises RuntimeError should HiGHS stop without a solution for another
reason (not expected for a validated problem). No allocation is ever returned when
anything is raised.

Pool decisions (`pools`, imported as `quartermaster.planner.pools`): the strategy's
quantile, horizon and buffer, pressure on the largest of requested, used and forecast, and
when the daily peaks' trend (or a growth scenario) reaches capacity.

Scaling decisions (`scaling`, `vertical`): a ScalingPolicy's replicas (Reactive,
Predictive) and a container's requests (Vertical); `quartermaster replay` runs them offline.

Modules: `pools` (pool figures), `scaling` (replicas), `vertical` (requests), `model` (problem, validation, objective), `separable` (fast exact solver),
`generic` (HiGHS LP/MILP with extended constraints), `antithrash`, `swaps` (allocations
to transfers), `risk`, `priority`, `planning` (the entry points).
"""
from .antithrash import AntiThrash
from .generic import NodeHeadroom, solve_generic
from .model import InfeasiblePlanError, Problem, objective
from .planning import Swap, SwapPlanRequest, SwapPlanResult, plan, plan_swaps
from .priority import PriorityClass, shortfall_weight
from .separable import solve_separable

__all__ = [
    "AntiThrash", "InfeasiblePlanError", "NodeHeadroom", "PriorityClass", "Problem", "Swap",
    "SwapPlanRequest", "SwapPlanResult", "objective", "plan", "plan_swaps", "shortfall_weight",
    "solve_generic", "solve_separable",
]
