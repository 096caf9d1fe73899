"""Anti-thrash rules: a minimum interval between swaps per instance, and no tiny changes.

Both work by holding allocations at their current value (max_change 0) and re-planning,
so every solver honours them and the plan stays optimal among plans that obey them
(as far as holding small changes greedily allows: that part is a heuristic, since
"zero or at least this much" is not convex).

The minimum size applies to each instance's change of a resource, which is what resizes
a workload. A change can be split over several transfers; a piece of it may be smaller.
An allocation outside its floor/ceiling must move, and may do so by any amount.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .model import InfeasiblePlanError, Problem


@dataclass(frozen=True, eq=False)
class AntiThrash:
    """min_swap_absolute: [R] or scalar, smallest change per resource;
    min_swap_relative: smallest change as a fraction of the instance's current allocation;
    min_interval_seconds: how long an instance is held after a swap;
    last_swap_seconds: [n] time of each instance's last swap, NaN for never; now_seconds: now.
    """

    min_swap_absolute: np.ndarray | float = 0.0
    min_swap_relative: float = 0.0
    min_interval_seconds: float = 0.0
    last_swap_seconds: np.ndarray | None = None
    now_seconds: float = 0.0

    def cooling_down(self, n: int) -> np.ndarray:
        """[n] instances swapped less than the minimum interval ago."""
        if self.last_swap_seconds is None:
            return np.zeros(n, dtype=bool)
        last = np.asarray(self.last_swap_seconds, dtype=np.float64)
        if last.shape != (n,):
            raise InfeasiblePlanError(f"shape mismatch: last_swap_seconds has shape {last.shape}, expected ({n},)")
        return self.now_seconds - last < self.min_interval_seconds  # NaN (never) compares False

    def too_small(self, current: np.ndarray, allocation: np.ndarray) -> np.ndarray:
        """[n, R] changes that are not zero but below the minimum size."""
        absolute = np.asarray(self.min_swap_absolute, dtype=np.float64)
        R = current.shape[1]
        if absolute.shape not in ((), (R,)):
            raise InfeasiblePlanError(
                f"shape mismatch: min_swap_absolute has shape {absolute.shape}, expected a scalar or ({R},)")
        change = np.abs(allocation - current)
        smallest = np.maximum(absolute, self.min_swap_relative * np.abs(current))
        return (change > 0) & (change < smallest)


def hold(problem: Problem, held: np.ndarray) -> Problem:
    """The problem with the `held` [n, R] allocations fixed at their current value."""
    return dataclasses.replace(problem, max_change=np.where(held, 0.0, problem.max_change))


def hold_cooling_down(problem: Problem, rule: AntiThrash) -> tuple[Problem, np.ndarray]:
    """Hold every instance still inside its minimum interval; also return that mask [n]."""
    cooling = rule.cooling_down(problem.shape[0])
    if not cooling.any():
        return problem, cooling
    stuck = cooling[:, None] & problem.must_move
    if stuck.any():
        i, r = (int(k) for k in np.argwhere(stuck)[0])
        raise InfeasiblePlanError(
            f"minimum interval between swaps: {problem.entry(i, r)} was swapped"
            f" {rule.now_seconds - rule.last_swap_seconds[i]:g} s ago (interval {rule.min_interval_seconds:g} s)"
            f" but must move: current {problem.current[i, r]:g} is outside"
            f" [{problem.minimum[i, r]:g}, {problem.maximum[i, r]:g}]")
    return hold(problem, np.broadcast_to(cooling[:, None], problem.shape)), cooling


def settle_small_changes(problem: Problem, allocation: np.ndarray, rule: AntiThrash,
                         solve: Callable[[Problem], np.ndarray]) -> np.ndarray:
    """Re-plan with changes below the minimum size held at current, until none is left."""
    for _ in range(problem.current.size):  # each round holds at least one more entry
        small = rule.too_small(problem.current, allocation) & ~problem.must_move
        # Taking back small releases can overfill the pool; keep them where it would.
        releases = small & (allocation < problem.current)
        pool_refuses = np.where(releases, problem.current, problem.lower).sum(axis=0) > problem.capacity
        small &= ~(releases & pool_refuses)
        if not small.any():
            break
        try:
            held = hold(problem, small)
            allocation_held = solve(held)
        except InfeasiblePlanError:
            # Node headroom or the change limit refused; taking back only small
            # increases always works (the current plan minus them stays feasible).
            small &= allocation > problem.current
            if not small.any():
                break
            held = hold(problem, small)
            allocation_held = solve(held)
        problem, allocation = held, allocation_held
    return allocation
