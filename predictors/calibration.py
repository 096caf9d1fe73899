"""Quantile forecasts from backtest residuals.

Each quantile is an anchor plus a conformal offset: the empirical quantile of the anchor's
backtest residuals per horizon step, pooled with neighbouring steps to steady the tails.
The anchor is the combined point forecast moved some share of the way to the last value,
chosen per series and per quantile by backtest pinball loss: the median is best anchored on
the smoothed point forecast, but an upper quantile often does better following a burst in
progress, which the point forecast rightly smooths away.
"""
from __future__ import annotations

import numpy as np

# Shares of the way from the point forecast to the last value that an anchor may take.
ANCHOR_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def quantile_forecasts(point: np.ndarray, last: np.ndarray, actuals: np.ndarray,
                       quantiles: np.ndarray) -> np.ndarray:
    """Quantile forecasts [n, len(quantiles), H] at the real origin.

    point: [n, O, H] combined point forecasts at every origin (the last one is the real
    origin); last: [n, O] the last value seen at each origin; actuals: [n, O - 1, H].
    """
    # per step, origins on the last axis (contiguous, for the sort)
    from_point = np.ascontiguousarray(np.swapaxes(actuals - point[:, :-1], 1, 2))
    to_last = np.ascontiguousarray(np.swapaxes(last[:, :-1, None] - point[:, :-1], 1, 2))
    best_loss = best = None
    for share in ANCHOR_SHARES:
        residuals = from_point - to_last.dtype.type(share) * to_last  # [n, H, O - 1]
        offsets, loss = _offsets_and_loss(residuals, quantiles)
        candidate = (point[:, -1] + share * (last[:, -1, None] - point[:, -1]))[:, None, :] + offsets
        if best is None:
            best_loss, best = loss, candidate
        else:
            better = loss < best_loss
            best_loss = np.where(better, loss, best_loss)
            best = np.where(better[:, :, None], candidate, best)
    return best


def _offsets_and_loss(residuals: np.ndarray, quantiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conformal quantiles [n, Q, H] of residuals laid out [n, H, O], and the mean backtest
    pinball loss [n, Q] of those quantiles on the residuals they came from.

    Each step's quantiles are smoothed with its neighbours' (weights 1/4, 1/2, 1/4) to steady
    the tails. The levels are widened by the split-conformal finite-sample correction, so a
    0.9 band covers about 90% out of sample.
    """
    n, horizon, count = residuals.shape
    if count == 0:
        return np.zeros((n, len(quantiles), horizon)), np.zeros((n, len(quantiles)))
    position = _conformal_levels(quantiles, count) * (count - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, count - 1)
    fraction = (position - below).astype(residuals.dtype)
    ranked = np.sort(residuals, axis=2)  # a SIMD sort of short rows beats np.partition here
    raw = ranked[:, :, below] * (1 - fraction) + ranked[:, :, above] * fraction  # [n, H, Q]
    padded = np.concatenate([raw[:, :1], raw, raw[:, -1:]], axis=1)
    offsets = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]
    # pinball of level q at offset c, averaged over r: q (mean r - c) - mean(min(r - c, 0)),
    # where the last term sums the k residuals under c, the first k of the ranked ones
    under = (ranked[:, :, None, :] < offsets[:, :, :, None]).sum(axis=3)  # [n, H, Q]
    partial = np.concatenate([np.zeros(ranked.shape[:2] + (1,), ranked.dtype), np.cumsum(ranked, axis=2)], axis=2)
    shortfall = (np.take_along_axis(partial, under, axis=2) - under * offsets) / count
    loss = (quantiles * (partial[:, :, -1:] / count - offsets) - shortfall).mean(axis=1)
    return np.swapaxes(offsets, 1, 2), loss


def _conformal_levels(quantiles: np.ndarray, samples: int) -> np.ndarray:
    """Push each level away from the median by the finite-sample correction (m + 1) / m."""
    widened = 0.5 + (quantiles - 0.5) * (samples + 1) / samples
    return np.clip(widened, 0.0, 1.0)
