"""The generic path: the model as a HiGHS (MI)LP, plus constraints the fast path cannot take.

Extended constraints:
* per-node headroom: on each node, the instances' increases minus their releases must fit
  the node's free allocatable, per resource;
* a maximum number of changed allocations (instance, resource) per plan. Each changed
  allocation is one party of the resource's transfers and `derive_transfers` makes at most
  (parties - 1) transfers, the pool counting as a party, so this also bounds the swaps.

Variables per entry, in blocks of n*R each: x (allocation), shortfall, waste, up, down
(x = current + up - down), and with a change limit a binary `changed`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from .model import InfeasiblePlanError, Problem


@dataclass(frozen=True, eq=False)
class NodeHeadroom:
    """Where instances run and what their nodes have free.

    node: [n] integer index into `free` of each instance's node, -1 for "not constrained";
    free: [nodes, R] free allocatable per node (what is not requested by anyone).
    """

    node: np.ndarray
    free: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "node", np.asarray(self.node, dtype=np.int64))
        object.__setattr__(self, "free", np.asarray(self.free, dtype=np.float64))


def solve_generic(problem: Problem, headroom: NodeHeadroom | None = None,
                  max_changes: int | None = None) -> np.ndarray:
    """An optimal allocation [n, R] under the model plus the extended constraints."""
    p = problem
    if headroom is not None:
        _check_headroom(p, headroom)
    if max_changes is not None:
        _check_max_changes(p, max_changes)
    n, R = p.shape
    m = n * R
    if m == 0:  # nothing to decide, and HiGHS wants at least one variable
        return p.current.copy()
    eye = sparse.identity(m, format="csr")
    # Above both demand and current the cost only rises, so no optimum goes there:
    # capping x at `top` keeps the optimum and gives finite big-M bounds below.
    top = p.top.ravel()
    bottom = p.lower.ravel()
    current = p.current.ravel()

    blocks = [[eye, eye, -eye, None, None],             # x + shortfall - waste = demand
              [eye, None, None, -eye, eye]]             # x - up + down = current
    lower_rows = [p.demand.ravel(), current]
    upper_rows = [p.demand.ravel(), current]
    pool = sparse.kron(np.ones((1, n)), sparse.identity(R), format="csr")
    blocks.append([pool, None, None, None, None])       # sum_i x <= capacity
    lower_rows.append(np.full(R, -np.inf))
    upper_rows.append(p.capacity)
    if headroom is not None:
        on_node = headroom.node >= 0
        rows = (headroom.node[:, None] * R + np.arange(R))[on_node].ravel()
        cols = (np.arange(n)[:, None] * R + np.arange(R))[on_node].ravel()
        per_node = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(headroom.free.size, m))
        blocks.append([None, None, None, per_node, -per_node])  # up - down per node <= free
        lower_rows.append(np.full(headroom.free.size, -np.inf))
        upper_rows.append(headroom.free.ravel())

    cost = [np.zeros(m), (p.weight[:, None] * p.shortfall_cost).ravel(),
            np.broadcast_to(p.waste_cost, (n, R)).ravel(),
            np.broadcast_to(p.move_cost, (n, R)).ravel(), np.broadcast_to(p.move_cost, (n, R)).ravel()]
    lb = [bottom, np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)]
    ub = [top, np.full(m, np.inf), np.full(m, np.inf), top - current, current - bottom]
    integrality = np.zeros(5 * m)
    if max_changes is not None:
        for row in blocks:
            row.append(None)
        blocks += [[None, None, None, eye, None, -sparse.diags(np.maximum(top - current, 0))],  # up <= big*changed
                   [None, None, None, None, eye, -sparse.diags(np.maximum(current - bottom, 0))],
                   [None, None, None, None, None, sparse.csr_matrix(np.ones((1, m)))]]
        lower_rows += [np.full(m, -np.inf), np.full(m, -np.inf), [-np.inf]]
        upper_rows += [np.zeros(m), np.zeros(m), [max_changes]]
        cost.append(np.zeros(m))
        lb.append(np.zeros(m))
        ub.append(np.ones(m))
        integrality = np.concatenate([integrality, np.ones(m)])
    # up/down bounds come from the box; clip so an entry forced off `current` stays consistent.
    lb, ub = np.concatenate(lb), np.maximum(np.concatenate(ub), np.concatenate(lb))
    constraints = LinearConstraint(sparse.bmat(blocks, format="csr"),
                                   np.concatenate(lower_rows), np.concatenate(upper_rows))
    result = milp(np.concatenate(cost), integrality=integrality, bounds=Bounds(lb, ub),
                  constraints=constraints)
    if result.status == 2:
        raise InfeasiblePlanError(
            "pool capacity, node headroom and the change limit cannot all hold together"
            f" (each holds on its own): {result.message}")
    if result.x is None:
        raise RuntimeError(f"HiGHS did not solve the swap plan: {result.message}")
    x = result.x[:m]
    if max_changes is not None:
        # Within HiGHS's integrality tolerance an "unchanged" entry may still drift by
        # ~1e-9, which would surface as extra swaps; put those back exactly.
        x = np.where(result.x[5 * m:] < 0.5, current, x)
    return x.reshape(n, R)


def _check_headroom(p: Problem, headroom: NodeHeadroom) -> None:
    """Name the node whose floors alone need more than it has free."""
    n, R = p.shape
    if headroom.node.shape != (n,) or headroom.free.ndim != 2 or headroom.free.shape[1] != R:
        raise InfeasiblePlanError(
            f"shape mismatch: node headroom needs node [{n}] and free [nodes, {R}], got"
            f" {headroom.node.shape} and {headroom.free.shape}")
    if (np.isnan(headroom.free).any() or headroom.node.max(initial=-1) >= headroom.free.shape[0]
            or headroom.node.min(initial=-1) < -1):
        raise InfeasiblePlanError(
            "node headroom: free must be numbers and node must index its rows (or be -1, not constrained)")
    # The least each node's instances can grow is what their floors force: lower - current.
    forced = np.zeros_like(headroom.free)
    on_node = headroom.node >= 0
    np.add.at(forced, headroom.node[on_node], (p.lower - p.current)[on_node])
    over = forced > headroom.free
    if over.any():
        k, r = (int(v) for v in np.argwhere(over)[0])
        raise InfeasiblePlanError(
            f"node headroom: node {k}, {p.resource(r)}: its instances must grow by at least"
            f" {forced[k, r]:g} (floors, max_change) but the node has {headroom.free[k, r]:g} free")


def _check_max_changes(p: Problem, max_changes: int) -> None:
    """Name the limit when the floors and ceilings alone force more changes."""
    forced = int(p.must_move.sum())
    if max_changes < 0 or forced > max_changes:
        raise InfeasiblePlanError(
            f"maximum changes per plan: {forced} allocations must change to meet floors and"
            f" ceilings but the limit is {max_changes}")
