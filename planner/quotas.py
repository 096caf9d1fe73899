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

from typing import Sequence


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
