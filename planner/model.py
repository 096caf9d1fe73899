"""The swap model: a validated problem, its feasible box and its objective.

For instances i and resources r, choose allocations x[i, r] that

    minimise  sum  weight[i] * shortfall_cost[r] * max(demand - x, 0)
                 + waste_cost[r] * max(x - demand, 0)
                 + move_cost[r] * |x - current|
    subject to  minimum <= x <= maximum,  |x - current| <= max_change,
                sum_i x[i, r] <= capacity[r].

A `Problem` checks all of this on construction and raises `InfeasiblePlanError`
when no allocation satisfies the constraints, so a solver only ever sees a
problem that has a solution.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class InfeasiblePlanError(ValueError):
    """No allocation satisfies the constraints, or a model array has the wrong shape or a bad value.

    The message names the constraint, the instance and/or resource and the amounts.
    """


# Relative slack on the pool check, so that floors filling the pool exactly pass
# even when the floating-point sum lands an ulp above the capacity.
_POOL_SLACK = 1e-12

_PER_INSTANCE = ("current", "demand", "minimum", "maximum", "max_change")
_PER_RESOURCE = ("capacity", "shortfall_cost", "waste_cost", "move_cost")
# Fields where +inf means "unbounded"; everything else must be finite.
_MAY_BE_INFINITE = ("maximum", "max_change", "capacity")
_NON_NEGATIVE = ("capacity", "max_change", "weight", "shortfall_cost", "waste_cost", "move_cost")


@dataclass(frozen=True, eq=False)
class Problem:
    """One pool's planning problem: arrays [n, R] per instance, [R] per resource, [n] weight.

    Names are optional and only used in error messages and swaps.
    `lower` and `upper` are the per-entry box: the floor/ceiling tightened by max_change.
    `top` is clip(max(demand, current), lower, upper): above both demand and current the
    cost only rises, so no optimum allocates more than that.
    `must_move` marks the entries whose current allocation is outside the box.
    """

    current: np.ndarray
    demand: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    capacity: np.ndarray
    weight: np.ndarray
    max_change: np.ndarray
    shortfall_cost: np.ndarray
    waste_cost: np.ndarray
    move_cost: np.ndarray
    instance_names: tuple[str, ...] | None = None
    resource_names: tuple[str, ...] | None = None
    lower: np.ndarray = field(init=False, repr=False)
    upper: np.ndarray = field(init=False, repr=False)
    top: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in (*_PER_INSTANCE, *_PER_RESOURCE, "weight"):
            object.__setattr__(self, name, np.array(getattr(self, name), dtype=np.float64))
        self._check_shapes()
        self._check_values()
        object.__setattr__(self, "lower", np.maximum(self.minimum, self.current - self.max_change))
        object.__setattr__(self, "upper", np.minimum(self.maximum, self.current + self.max_change))
        self._check_box()
        self._check_pool()
        object.__setattr__(self, "top", np.clip(np.maximum(self.demand, self.current), self.lower, self.upper))

    @property
    def shape(self) -> tuple[int, int]:
        return self.current.shape

    @property
    def must_move(self) -> np.ndarray:
        """[n, R] entries whose current allocation is outside [lower, upper], so any plan changes them.

        Since max_change >= 0 that is the same as outside [minimum, maximum].
        """
        return (self.current < self.lower) | (self.current > self.upper)

    def instance(self, i: int) -> str:
        return f"instance {self.instance_names[i]!r}" if self.instance_names else f"instance {i}"

    def resource(self, r: int) -> str:
        return f"resource {self.resource_names[r]!r}" if self.resource_names else f"resource {r}"

    def entry(self, i: int, r: int) -> str:
        return f"{self.instance(i)}, {self.resource(r)}"

    def _check_shapes(self) -> None:
        if self.current.ndim != 2:
            raise InfeasiblePlanError(
                f"shape mismatch: current must be [instances, resources], got shape {self.current.shape}")
        n, R = self.current.shape
        expected = {**{k: (n, R) for k in _PER_INSTANCE}, **{k: (R,) for k in _PER_RESOURCE}, "weight": (n,)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise InfeasiblePlanError(
                    f"shape mismatch: {name} has shape {getattr(self, name).shape}, expected {shape} "
                    f"for {n} instances and {R} resources")
        for names, count, what in ((self.instance_names, n, "instance"), (self.resource_names, R, "resource")):
            if names is not None and len(names) != count:
                raise InfeasiblePlanError(f"shape mismatch: {len(names)} {what} names for {count} {what}s")

    def _check_values(self) -> None:
        for name in (*_PER_INSTANCE, *_PER_RESOURCE, "weight"):
            values = getattr(self, name)
            bad = np.isnan(values) | (np.isinf(values) if name not in _MAY_BE_INFINITE else values == -np.inf)
            if bad.any():
                where = self._locate(name, bad)
                raise InfeasiblePlanError(f"not a finite number: {name} of {where} is {values[np.nonzero(bad)][0]}")
        for name in _NON_NEGATIVE:
            values = getattr(self, name)
            if (values < 0).any():
                where = self._locate(name, values < 0)
                raise InfeasiblePlanError(f"negative {name}: {name} of {where} is {values[values < 0][0]:g}")

    def _locate(self, name: str, mask: np.ndarray) -> str:
        """Name the first flagged entry of an array and how many more there are."""
        first = tuple(int(k) for k in np.argwhere(mask)[0])
        if name in _PER_INSTANCE:
            where = self.entry(*first)
        elif name == "weight":
            where = self.instance(first[0])
        else:
            where = self.resource(first[0])
        more = int(mask.sum()) - 1
        return f"{where} (and {more} more)" if more else where

    def _check_box(self) -> None:
        checks = (
            (self.minimum > self.maximum, "SLA floor above ceiling",
             lambda i, r: f"minimum {self.minimum[i, r]:g} > maximum {self.maximum[i, r]:g}"),
            (self.minimum > self.current + self.max_change, "SLA floor out of reach within max_change",
             lambda i, r: f"minimum {self.minimum[i, r]:g} > current {self.current[i, r]:g}"
                          f" + max_change {self.max_change[i, r]:g}"),
            (self.maximum < self.current - self.max_change, "ceiling out of reach within max_change",
             lambda i, r: f"maximum {self.maximum[i, r]:g} < current {self.current[i, r]:g}"
                          f" - max_change {self.max_change[i, r]:g}"),
        )
        for mask, constraint, amounts in checks:
            if mask.any():
                i, r = (int(k) for k in np.argwhere(mask)[0])
                more = int(mask.sum()) - 1
                tail = f" (and {more} more)" if more else ""
                raise InfeasiblePlanError(f"{constraint}: {self.entry(i, r)}: {amounts(i, r)}{tail}")

    def _check_pool(self) -> None:
        floors, reachable = self.minimum.sum(axis=0), self.lower.sum(axis=0)
        slack = _POOL_SLACK * np.maximum(np.abs(self.capacity), np.abs(self.lower).sum(axis=0))
        for r in range(self.shape[1]):
            if floors[r] > self.capacity[r] + slack[r]:
                raise InfeasiblePlanError(
                    f"SLA floors above pool capacity: {self.resource(r)}: the floors sum to {floors[r]:g}"
                    f" but capacity is {self.capacity[r]:g}")
            if reachable[r] > self.capacity[r] + slack[r]:
                raise InfeasiblePlanError(
                    f"pool capacity out of reach within max_change: {self.resource(r)}: instances can shrink"
                    f" to {reachable[r]:g} in total at most but capacity is {self.capacity[r]:g}")


def objective(problem: Problem, x: np.ndarray) -> float:
    """The model's objective for allocation x."""
    p = problem
    return float(np.sum(p.weight[:, None] * p.shortfall_cost * np.maximum(p.demand - x, 0)
                        + p.waste_cost * np.maximum(x - p.demand, 0)
                        + p.move_cost * np.abs(x - p.current)))
