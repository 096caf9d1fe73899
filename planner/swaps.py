"""From allocations to transfers: who gives how much of what to whom.

Per resource, the donors are the instances whose allocation shrinks, the recipients those
whose allocation grows, and the pool's free capacity is one more party: it gives when the
plan grows the total and takes when it shrinks it, so every resource balances. Donors and
recipients are each sorted largest first and matched greedily along their running totals,
which gives at most (parties - 1) transfers and sends big amounts in few pieces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POOL = -1
"""Party index of the pool's free capacity."""

_SLIVER = 1e-12


@dataclass(frozen=True, eq=False)
class Transfers:
    """Parallel arrays, one element per transfer; `POOL` stands for the pool's free capacity."""

    donor: np.ndarray
    recipient: np.ndarray
    resource: np.ndarray
    amount: np.ndarray

    def __len__(self) -> int:
        return self.amount.size


def derive_transfers(current: np.ndarray, allocation: np.ndarray) -> Transfers:
    """The transfers that turn `current` [n, R] into `allocation` [n, R]."""
    parts = [_match_resource(allocation[:, r] - current[:, r], r) for r in range(current.shape[1])]
    return Transfers(*(np.concatenate([part[k] for part in parts]) for k in range(4)))


def _match_resource(delta: np.ndarray, resource: int):
    released = np.flatnonzero(delta < 0)
    gained = np.flatnonzero(delta > 0)
    net = delta[gained].sum() - (-delta[released]).sum()
    donors = np.append(released, POOL) if net > 0 else released
    recipients = np.append(gained, POOL) if net < 0 else gained
    give = np.append(-delta[released], net) if net > 0 else -delta[released]
    take = np.append(delta[gained], -net) if net < 0 else delta[gained]
    if give.size == 0 or take.size == 0:
        return (np.empty(0, int),) * 3 + (np.empty(0),)
    give_order = np.argsort(-give, kind="stable")
    take_order = np.argsort(-take, kind="stable")
    give_total = np.cumsum(give[give_order])
    take_total = np.cumsum(take[take_order])
    # Both sides total the same amount; make the running totals end on the same float.
    take_total[-1] = give_total[-1]
    cuts = np.union1d(give_total, take_total)
    amount = np.diff(cuts, prepend=0.0)
    # A transfer's interval (previous cut, cut] lies inside one donor's and one recipient's.
    donor = donors[give_order[np.minimum(np.searchsorted(give_total, cuts), give.size - 1)]]
    recipient = recipients[take_order[np.minimum(np.searchsorted(take_total, cuts), take.size - 1)]]
    # Running totals that differ only by rounding leave slivers; they are not transfers.
    keep = amount > _SLIVER * give_total[-1]
    return donor[keep], recipient[keep], np.full(int(keep.sum()), resource), amount[keep]
