"""Risk of swaps and plans, in [0, 1].

For each party of a transfer (the pool is no party here: its free capacity has no SLA):

    uncertainty = spread / (spread + |median|),  spread = max(upper - median, 0)
        how unsure the forecast is: 0 for a certain one, towards 1 when the spread dwarfs it;
    share = amount / max(allocation before, allocation after)
        how much of the party's allocation this transfer moves;
    party risk = priority risk factor * uncertainty * share.

A swap's risk is 1 - (1 - donor risk)(1 - recipient risk): read as chances, the chance
that either side goes wrong. A plan's risk is its riskiest swap's: the approval gate asks
whether any one move needs a person to look at it, so the figure does not grow with the
size of the pool (taken as independent chances, a plan of thousands of small, safe moves
would always read as certain to fail).
"""
from __future__ import annotations

import numpy as np

from .swaps import POOL, Transfers


def swap_risk(transfers: Transfers, current: np.ndarray, allocation: np.ndarray,
              forecast_median: np.ndarray, forecast_upper: np.ndarray,
              risk_factor: np.ndarray) -> np.ndarray:
    """Risk [k] of each transfer; arrays [n, R] except risk_factor [n] (per instance)."""
    spread = np.maximum(forecast_upper - forecast_median, 0.0)
    scale = spread + np.abs(forecast_median)
    uncertainty = np.divide(spread, scale, out=np.zeros_like(spread), where=scale > 0)
    size = np.maximum(np.abs(current), np.abs(allocation))

    def party_risk(party: np.ndarray) -> np.ndarray:
        is_instance = party != POOL
        i, r = party[is_instance], transfers.resource[is_instance]
        share = np.divide(transfers.amount[is_instance], size[i, r],
                          out=np.ones(i.size), where=size[i, r] > 0)
        risk = np.zeros(len(transfers))
        risk[is_instance] = risk_factor[i] * uncertainty[i, r] * np.minimum(share, 1.0)
        return risk

    return 1.0 - (1.0 - party_risk(transfers.donor)) * (1.0 - party_risk(transfers.recipient))


def plan_risk(swap_risks: np.ndarray) -> float:
    """The riskiest swap's risk; 0 for a plan with no swaps."""
    return float(np.clip(np.max(swap_risks, initial=0.0), 0.0, 1.0))
