"""Quantile forecasts from backtest residuals (split-conformal prediction).

Each quantile is an anchor plus an offset. The anchor is the combined point forecast moved
some share of the way to the last value, chosen per series and per quantile by backtest
pinball loss: the median is best anchored on the smoothed point forecast, but an upper
quantile often does better following a burst in progress, which the point forecast rightly
smooths away.

The offset is a quantile of the anchor's backtest residuals. Residuals of all horizon
steps are pooled once each step's are divided by that step's mean absolute residual, so a
tail quantile rests on every origin and step rather than on the few origins of one step,
and is scaled back per step. Every origin counts the same: weighting recent origins, or
origins at a level like today's, and widening the levels by the finite-sample correction
each helped at most one trace family of four, so they were dropped (predictors/README.md).
"""
from __future__ import annotations

import numpy as np

# Shares of the way from the point forecast to the last value that an anchor may take.
ANCHOR_SHARES = (0.0, 1.0)
# The recent coverage is measured on this newest share of the backtest origins, with the
# top quantile calibrated on the older ones only (so it is out of sample).
RECENT_SHARE = 1 / 3


def quantile_forecasts(point: np.ndarray, last: np.ndarray, actuals: np.ndarray, quantiles: np.ndarray,
                       shares: tuple[float, ...] = ANCHOR_SHARES) -> tuple[np.ndarray, np.ndarray]:
    """Quantile forecasts [n, len(quantiles), H] at the real origin, and [n] the recent
    coverage of the top quantile (``_recent_coverage``).

    point: [n, O, H] combined point forecasts at every origin (the last one is the real
    origin); last: [n, O] the last value seen at each origin; actuals: [n, O - 1, H] with
    at least one backtest origin; shares: the anchors to choose from.
    """
    n, count, horizon = actuals.shape
    levels = np.broadcast_to(quantiles[None, :], (n, len(quantiles)))
    from_point = actuals - point[:, :-1]
    to_last = last[:, :-1, None] - point[:, :-1]
    # the anchor: for each quantile, the share whose offsets have the lowest backtest pinball loss
    best_loss = np.full((n, len(quantiles)), np.inf)
    best = np.zeros((n, len(quantiles)), dtype=np.intp)
    pooled, offsets, scales = [], [], []
    for index, share in enumerate(shares):
        residuals = from_point - from_point.dtype.type(share) * to_last
        standardised, scale = _pool_steps(residuals)
        offsets.append(sample_quantiles(np.sort(standardised, axis=1), levels))  # [n, Q]
        loss = _pinball(residuals, offsets[-1][:, :, None] * scale, quantiles)
        better = loss < best_loss
        best_loss = np.where(better, loss, best_loss)
        best = np.where(better, index, best)
        pooled.append(standardised)
        scales.append(scale[:, 0])
    rows = np.arange(n)[:, None]
    offset = np.stack(offsets, axis=1)[rows, best, np.arange(len(quantiles))]  # [n, Q]
    scale = np.stack(scales, axis=1)[rows, best]  # [n, Q, H]
    anchor = point[:, -1, None] + np.asarray(shares)[best][:, :, None] * (last[:, -1, None] - point[:, -1])[:, None]
    top = best[:, -1]
    top_pooled = pooled[0]
    for index in range(1, len(shares)):
        top_pooled = np.where((top == index)[:, None], pooled[index], top_pooled)
    return anchor + offset[:, :, None] * scale, _recent_coverage(top_pooled, count, quantiles[-1])


def _recent_coverage(pooled: np.ndarray, count: int, level: float) -> np.ndarray:
    """Share [n] of the pooled residuals [n, count * H] (origin-major) of the newest
    RECENT_SHARE of the origins at or under the ``level`` quantile of the older origins':
    how well that quantile, calibrated without them, covered the latest actuals."""
    horizon = pooled.shape[1] // count
    older = (count - max(1, round(RECENT_SHARE * count))) * horizon
    if older == 0:  # a single origin: nothing to calibrate on, nothing known
        return np.full(len(pooled), level)
    past = np.sort(pooled[:, :older], axis=1)
    offset = sample_quantiles(past, np.full((len(pooled), 1), level))
    return (pooled[:, older:] <= offset).mean(axis=1)


def _pool_steps(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals [n, O, H] divided by each step's mean absolute residual and laid out
    [n, O * H] (origin-major), and those scales [n, 1, H] (never 0)."""
    scale = np.maximum(np.abs(residuals).mean(axis=1, keepdims=True), np.finfo(residuals.dtype).tiny)
    return (residuals / scale).reshape(residuals.shape[0], -1), scale


def _pinball(residuals: np.ndarray, offsets: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Mean pinball loss [n, Q] of offsets [n, Q, H] on residuals [n, O, H]."""
    # pinball(r - c) = q (r - c) - min(r - c, 0); the first term only needs the means
    mean_residual = residuals.mean(axis=(1, 2))
    loss = np.empty(offsets.shape[:2])
    shortfall = np.empty_like(residuals)
    for q, level in enumerate(quantiles):
        np.minimum(np.subtract(residuals, offsets[:, q][:, None, :], out=shortfall), 0, out=shortfall)
        loss[:, q] = level * (mean_residual - offsets[:, q].mean(axis=1)) - shortfall.mean(axis=(1, 2))
    return loss


def sample_quantiles(ranked: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles [n, Q] at ``levels`` [n, Q] of equally weighted samples ``ranked`` [n, S]
    (ascending), at the plotting positions (k + 1/2) / S."""
    position = np.clip(levels * ranked.shape[1] - 0.5, 0, ranked.shape[1] - 1)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, ranked.shape[1] - 1)
    fraction = (position - lower).astype(ranked.dtype)
    below, above = np.take_along_axis(ranked, lower, axis=1), np.take_along_axis(ranked, upper, axis=1)
    return below + fraction * (above - below)
