"""The fast exact solver: the model separates per entry except for one pool row per resource.

Each entry's cost is convex and piecewise linear in x, with knees at min(demand, current)
and max(demand, current). Inside the box [lower, upper] only two pieces can have a
negative slope (below the lower knee: -(weight*shortfall + move); between the knees:
waste - move when demand < current, move - weight*shortfall otherwise); above both knees
the cost only rises. So each entry is "lower plus up to two segments worth filling", and a
resource's pool is a fractional knapsack over those segments: fill them in order of
slope, most negative first, until the segments run out or the capacity does. That is the
Lagrangian solution with the pool's multiplier at the slope of the last segment touched,
and it is exactly optimal. Everything is vectorised; the only loop is over resources
whose pool binds.
"""
from __future__ import annotations

import math

import numpy as np

from .model import Problem

# Taking the excess back rounds too, so each pass re-measures the pool and takes back what
# the one before left over. In 4,000 random binding pools one pass always sufficed; the
# other two are spare.
_EXCESS_PASSES = 3


def solve_separable(problem: Problem) -> np.ndarray:
    """An optimal allocation [n, R] for a (validated) problem."""
    p = problem
    shortfall = p.weight[:, None] * p.shortfall_cost
    knee_low = np.minimum(p.demand, p.current)
    end_first = np.clip(knee_low, p.lower, p.upper)
    end_second = p.top  # clip(max(demand, current), lower, upper)
    slope_first = -(shortfall + p.move_cost)
    slope_second = np.where(p.demand < p.current, p.waste_cost - p.move_cost, p.move_cost - shortfall)
    # Convexity: slope_second >= slope_first, so a useful second segment implies a useful first one.
    x = np.where(slope_second < 0, end_second, np.where(slope_first < 0, end_first, p.lower))
    # Exact sums (fsum), so that a pool over by an ulp is caught too.
    for r in [r for r in range(p.shape[1]) if math.fsum(x[:, r]) > p.capacity[r]]:
        x[:, r] = _fill_pool(p.lower[:, r], end_first[:, r], end_second[:, r],
                             slope_first[:, r], slope_second[:, r], p.capacity[r])
    return x


def _fill_pool(lower, end_first, end_second, slope_first, slope_second, capacity) -> np.ndarray:
    """One resource whose unconstrained optimum overfills the pool: fill segments by slope."""
    n = lower.size
    # Segment k < n is entry k's first segment, k >= n entry k-n's second one. A stable sort
    # keeps an entry's first segment ahead of its second when their slopes tie.
    length = np.concatenate([end_first - lower, end_second - end_first])
    slope = np.concatenate([slope_first, slope_second])
    useful = np.flatnonzero((slope < 0) & (length > 0))
    if useful.size == 0:  # only the pool check's rounding slack let lower overfill it
        return lower.copy()
    order = useful[np.argsort(slope[useful], kind="stable")]
    filled = np.cumsum(length[order])
    budget = max(capacity - lower.sum(), 0.0)
    full = np.searchsorted(filled, budget, side="right")  # order[:full] fit entirely
    if full == order.size:  # rounding only: everything fits after all
        full -= 1
    is_full = np.zeros(2 * n, dtype=bool)
    is_full[order[:full]] = True
    x = np.where(is_full[n:], end_second, np.where(is_full[:n], end_first, lower))
    # The segment the budget runs out in gets the remainder.
    partial = order[full]
    remainder = budget - (filled[full - 1] if full else 0.0)
    entry = partial % n
    start = lower[entry] if partial < n else end_first[entry]
    x[entry] = start + np.clip(remainder, 0.0, length[partial])
    # Rounding can leave the pool a few ulps over; take that back from the same entry, so
    # that the exact (fsum) total is within capacity whatever order a checker sums in.
    for _ in range(_EXCESS_PASSES):
        excess = math.fsum(x) - capacity
        if excess <= 0:
            break
        x[entry] = max(x[entry] - excess, start)
    return x
