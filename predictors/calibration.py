"""Quantile forecasts from backtest residuals (localised conformal prediction).

Each quantile is an anchor plus an offset. The anchor is the combined point forecast moved
some share of the way to the last value, chosen per series and per quantile by backtest
pinball loss: the median is best anchored on the smoothed point forecast, but an upper
quantile often does better following a burst in progress, which the point forecast rightly
smooths away.

The offset is a weighted quantile of the anchor's backtest residuals. Residuals of all
horizon steps are pooled once each step's are divided by that step's mean absolute
residual, so a tail quantile rests on every origin and step rather than on the few origins
of one step, and is scaled back per step. Each origin is weighted by how recent it is and
by how close the level forecast then was to the one now, so a quiet night is not
calibrated on a busy afternoon's errors.
"""
from __future__ import annotations

import numpy as np

# Shares of the way from the point forecast to the last value that an anchor may take.
ANCHOR_SHARES = (0.0, 0.5, 1.0)
# An origin's weight halves every this share of the backtest's origins, counted back from the newest.
RECENCY_HALF_LIFE = 0.4
# An origin whose level is one standard deviation (over the backtest) from today's weighs
# exp(-1/2) as much; however far, it keeps this much so that no origin is ignored.
LEVEL_WEIGHT_FLOOR = 0.1
# The recent coverage is measured on this newest share of the backtest origins, with the
# top quantile calibrated on the older ones only (so it is out of sample).
RECENT_SHARE = 1 / 3


def origin_weights(levels: np.ndarray, recency_half_life: float | None = RECENCY_HALF_LIFE,
                   level_weight_floor: float | None = LEVEL_WEIGHT_FLOOR) -> np.ndarray:
    """Weights [n, O - 1] of the backtest origins, from the level of each series at every
    origin ([n, O], the last column at the real origin): recent origins, and origins at a
    level like the current one, count more (either left out when its setting is None)."""
    count = levels.shape[1] - 1
    weights = np.ones((levels.shape[0], count))
    if recency_half_life is not None:
        weights *= np.exp2(-(count - 1 - np.arange(count)) / max(recency_half_life * count, 1.0))
    if level_weight_floor is not None:
        spread = levels[:, :-1].std(axis=1, keepdims=True)
        distance = (levels[:, :-1] - levels[:, -1:]) / np.where(spread > 0, spread, 1.0)
        weights *= np.exp(-0.5 * distance ** 2) + level_weight_floor
    return weights


def quantile_forecasts(point: np.ndarray, last: np.ndarray, actuals: np.ndarray,
                       quantiles: np.ndarray, weights: np.ndarray | None = None,
                       shares: tuple[float, ...] = ANCHOR_SHARES,
                       correction: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Quantile forecasts [n, len(quantiles), H] at the real origin, and [n] the recent
    coverage of the top quantile: the share of the actuals at the newest RECENT_SHARE of
    the backtest origins at or under that quantile as calibrated on the older origins.

    point: [n, O, H] combined point forecasts at every origin (the last one is the real
    origin); last: [n, O] the last value seen at each origin; actuals: [n, O - 1, H] with
    at least one backtest origin; weights: [n, O - 1] of the backtest origins (equal if not
    given); shares: the anchors to choose from. With ``correction`` the levels are widened
    by the split-conformal finite-sample correction, with the weights' effective sample
    size, so a 0.9 band covers about 90% out of sample.
    """
    n, count, horizon = actuals.shape
    weights = np.ones((n, count)) if weights is None else weights
    weights = weights / weights.sum(axis=1, keepdims=True)
    levels = np.broadcast_to(quantiles[None, :], (n, len(quantiles)))
    if correction:
        levels = _conformal_levels(levels, 1.0 / np.square(weights).sum(axis=1, keepdims=True))  # [n, Q]
    from_point = actuals - point[:, :-1]
    to_last = last[:, :-1, None] - point[:, :-1]
    # the anchor: for each quantile, the share whose offsets (here from the equally weighted
    # pooled residuals) have the lowest weighted backtest pinball loss
    best_loss = np.full((n, len(quantiles)), np.inf)
    best = np.zeros((n, len(quantiles)), dtype=np.intp)
    pooled, ranked, scales = [], [], []
    for index, share in enumerate(shares):
        residuals = from_point - from_point.dtype.type(share) * to_last
        standardised, scale = _pool_steps(residuals)
        pooled.append(standardised)
        ranked.append(_sort_tagged(standardised, count))
        scales.append(scale[:, 0])
        standard = sample_quantiles(ranked[-1], levels)
        loss = _pinball(residuals, standard[:, :, None] * scale, weights, quantiles)
        better = loss < best_loss
        best_loss = np.where(better, loss, best_loss)
        best = np.where(better, index, best)
    # then each quantile's offsets from its anchor's sorted residuals, weighted
    ranked, scales, rows = np.stack(ranked, axis=1), np.stack(scales, axis=1), np.arange(n)
    share = np.asarray(shares)[best]  # [n, Q]
    out = np.empty((n, len(quantiles), horizon))
    for q in range(len(quantiles)):
        offsets = _weighted_quantile(ranked[rows, best[:, q]], weights, count, levels[:, q])
        out[:, q] = (point[:, -1] + share[:, q, None] * (last[:, -1, None] - point[:, -1])
                     + offsets[:, None] * scales[rows, best[:, q]])
    return out, _recent_coverage(np.stack(pooled, axis=1)[rows, best[:, -1]], ranked[rows, best[:, -1]],
                                 weights, levels[:, -1])


def _recent_coverage(pooled: np.ndarray, ranked: np.ndarray, weights: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Share [n] of the pooled residuals [n, O * H] (origin-major) of the newest origins at
    or under the ``level`` quantile of the older origins' (``ranked``: the same, sorted and
    tagged; ``weights`` [n, O]), the older origins keeping their weights."""
    count = weights.shape[1]
    older = count - max(1, round(RECENT_SHARE * count))
    past = np.where(np.arange(count) < older, weights, 0.0)
    offset = _weighted_quantile(ranked, past / past.sum(axis=1, keepdims=True), count, level)
    recent = pooled.reshape(len(pooled), count, -1)[:, older:]
    return (recent <= offset[:, None, None]).mean(axis=(1, 2))


def _pool_steps(residuals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals [n, O, H] divided by each step's mean absolute residual and laid out
    [n, O * H] (origin-major), and those scales [n, 1, H] (never 0)."""
    scale = np.maximum(np.abs(residuals).mean(axis=1, keepdims=True), np.finfo(residuals.dtype).tiny)
    return (residuals / scale).reshape(residuals.shape[0], -1), scale


def _sort_tagged(pooled: np.ndarray, count: int) -> np.ndarray:
    """Pooled residuals [n, count * H] (origin-major) sorted per row, each carrying its
    origin in the lowest bits of its mantissa (``_origin_tags``): a plain sort, several
    times faster than an argsort, that still says whose weight each one has. The tags move
    a value by under 2 ** -16 of itself."""
    as_bits, tag = _origin_tags(pooled.dtype, count)
    origin = np.repeat(np.arange(count, dtype=as_bits), pooled.shape[1] // count)
    return np.sort(((pooled.view(as_bits) & ~tag) | origin).view(pooled.dtype), axis=1)


def _origin_tags(dtype: np.dtype, count: int) -> tuple[np.dtype, int]:
    """The integer type of ``dtype``'s bits, and the mask of the low bits that hold an origin."""
    return np.dtype(f"i{np.dtype(dtype).itemsize}"), (1 << max(count - 1, 1).bit_length()) - 1


def _weighted_quantile(ranked: np.ndarray, weights: np.ndarray, count: int, level: np.ndarray) -> np.ndarray:
    """The weighted quantile [n] at ``level`` [n] of sorted tagged residuals [n, S] (from
    ``_sort_tagged``), each carrying its origin's weight [n, count] shared over the steps
    and sitting at the middle of its mass, so that equal weights give the usual plotting
    positions; the tags are cleared first."""
    as_bits, tag = _origin_tags(ranked.dtype, count)
    bits = ranked.view(as_bits)
    per_step = count / ranked.shape[1]
    mass = np.take_along_axis((weights * per_step).astype(ranked.dtype), bits & tag, axis=1)
    position = np.cumsum(mass, axis=1) - 0.5 * mass
    return _interpolate(position, (bits & ~tag).view(ranked.dtype), level)


def _pinball(residuals: np.ndarray, offsets: np.ndarray, weights: np.ndarray,
             quantiles: np.ndarray) -> np.ndarray:
    """Weighted mean pinball loss [n, Q] of offsets [n, Q, H] on residuals [n, O, H]."""
    # pinball(r - c) = q (r - c) - min(r - c, 0); the first term only needs the means
    horizon = residuals.shape[2]
    # weighted means over origins and steps as batched [1, O] @ [O, H] products: several
    # times faster than an einsum, which would cast the residuals to the weights' float64
    weights = weights.astype(residuals.dtype)[:, None, :]
    mean_of = lambda a: np.matmul(weights, a)[:, 0].sum(axis=1) / horizon
    mean_residual = mean_of(residuals)
    loss = np.empty(offsets.shape[:2])
    shortfall = np.empty_like(residuals)
    for q, level in enumerate(quantiles):
        np.minimum(np.subtract(residuals, offsets[:, q][:, None, :], out=shortfall), 0, out=shortfall)
        loss[:, q] = level * (mean_residual - offsets[:, q].mean(axis=1)) - mean_of(shortfall)
    return loss


def sample_quantiles(ranked: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles [n, Q] at ``levels`` [n, Q] of equally weighted samples ``ranked`` [n, S]
    (ascending), with the same plotting positions (k + 1/2) / S as ``_interpolate``."""
    position = np.clip(levels * ranked.shape[1] - 0.5, 0, ranked.shape[1] - 1)
    lower = np.floor(position).astype(np.intp)
    upper = np.minimum(lower + 1, ranked.shape[1] - 1)
    fraction = (position - lower).astype(ranked.dtype)
    below, above = np.take_along_axis(ranked, lower, axis=1), np.take_along_axis(ranked, upper, axis=1)
    return below + fraction * (above - below)


def _interpolate(position: np.ndarray, ranked: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row, the value at ``level`` [n] of the piecewise-linear curve through
    (position, ranked), both [n, S] ascending; held flat beyond the ends."""
    above = (position < level[:, None]).sum(axis=1)  # first sample at or past the level
    upper = np.minimum(above, position.shape[1] - 1)
    lower = np.maximum(above - 1, 0)
    take = lambda a, i: np.take_along_axis(a, i[:, None], axis=1)[:, 0]
    p0, p1, v0, v1 = take(position, lower), take(position, upper), take(ranked, lower), take(ranked, upper)
    fraction = np.clip((level - p0) / np.where(p1 > p0, p1 - p0, 1.0), 0.0, 1.0)
    return v0 + fraction * (v1 - v0)


def _conformal_levels(quantiles: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Push each level away from the median by the finite-sample correction (m + 1) / m."""
    widened = 0.5 + (quantiles - 0.5) * (samples + 1) / samples
    return np.clip(widened, 0.0, 1.0)
