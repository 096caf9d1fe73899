"""A Quota's total, split across its namespaces.

The rule: each namespace gets what it uses now plus an equal share of what is left of the
total; when the namespaces together use more than the total, each gets the total in
proportion to its use. Amounts are whole units (millicores, bytes, counts), so what an
equal or proportional share leaves over is handed out one unit at a time, to the largest
fractions first (ties by position), and the split always sums to the total exactly.

Properties: the split sums to the total; when the total covers every namespace's use, no
namespace gets less than it uses (so no running pod is ever over its namespace's limit
because of the split). The split is computed afresh every control cycle from the
requests in place, so it follows the load as fast as the cycle runs (its resync period,
or soon after a pod changes): a namespace that starts more pods is given their requests
out of the others' spare share at the next cycle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


def split_total(total: int, used: Sequence[int]) -> list[int]:
    """The total (whole units) split across namespaces using `used` of it now."""
    if total < 0 or any(u < 0 for u in used):
        raise ValueError("a total and its uses are never negative")
    if not used:
        return []
    in_use = sum(used)
    if in_use <= total:
        return [u + s for u, s in zip(used, _shares(total - in_use, [1] * len(used)))]
    return _shares(total, list(used))


def _shares(amount: int, weights: list[int]) -> list[int]:
    """`amount` in whole units in proportion to `weights` (largest remainders first)."""
    whole = sum(weights)
    if whole == 0:
        return _shares(amount, [1] * len(weights))
    exact = [amount * w for w in weights]
    shares = [e // whole for e in exact]
    left = amount - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] % whole), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def split_by_kind(total: int, used: Sequence[Sequence[int]]) -> list[list[int]]:
    """A total over namespaces whose use is counted per kind (`used[namespace][kind]`):
    split across the namespaces by their whole use, then each namespace's part across its
    kinds by the same rule. The parts sum to the total, and when the total covers the use
    no kind gets less than its count, as `split_total` does for one figure."""
    parts = split_total(total, [sum(kinds) for kinds in used])
    return [split_total(part, list(kinds)) for part, kinds in zip(parts, used)]


@dataclass(frozen=True)
class CohortMember:
    """One Quota of a borrowing cohort, for one resource, in whole units."""

    limit: int  # its own total (spec.hard)
    demand: int  # what its namespaces hold and ask for
    weight: float = 1.0  # its fair-share weight: borrowers share scarce idle capacity by it
    borrowing_limit: Optional[int] = 0  # the most it may borrow; None: no limit, 0: it does not borrow
    lending_limit: Optional[int] = None  # the most of its idle capacity others may borrow; None: all of it
    reserved: int = 0  # what its active reservations hold: never lent, used or not


def lend_idle(members: Sequence[CohortMember]) -> list[int]:
    """Each member's change of limit (Kueue's cohorts, settled afresh every cycle): a
    borrower gains what its demand exceeds its limit by, up to its borrowing limit and as
    far as the others' idle capacity (limit less demand, up to their lending limits) goes;
    the lenders lose what is borrowed, in proportion to what each can lend. When borrowers
    want more than is idle, they share it by weight. The changes sum to zero, so the
    cohort's total never grows, and no lender is left with less than its demand or its
    reservation (up to its limit): when its demand returns, what it had lent comes back at
    once, and capacity reserved for it is there whether or not it is used yet."""
    if any(m.limit < 0 or m.demand < 0 or m.reserved < 0 or not m.weight > 0 for m in members):
        raise ValueError("limits, demands and reservations are never negative, weights always positive")

    def capped(amount: int, cap: Optional[int]) -> int:
        return amount if cap is None else min(amount, cap)

    wants = [capped(max(0, m.demand - m.limit), m.borrowing_limit) for m in members]
    lendable = [capped(max(0, m.limit - max(m.demand, m.reserved)), m.lending_limit) for m in members]
    borrowed = _fill(min(sum(wants), sum(lendable)), wants, [m.weight for m in members])
    lent = _shares(sum(borrowed), lendable) if sum(lendable) else [0] * len(members)
    return [b - l for b, l in zip(borrowed, lent)]


def _fill(amount: int, wants: list[int], weights: list[float]) -> list[int]:
    """`amount` (at most the sum of `wants`) shared by weight, no one given more than it
    wants: what a capped one cannot take goes round the others again."""
    given = [0] * len(wants)
    while amount > 0:
        open_ = [i for i, w in enumerate(wants) if given[i] < w]
        parts = _shares(amount, [round(weights[i] * 1000) for i in open_])
        for i, part in zip(open_, parts):
            take = min(part, wants[i] - given[i])
            given[i] += take
            amount -= take
    return given
