"""Conformal quantiles: the point forecast plus empirical quantiles of recent backtest
residuals, per horizon step, pooled with neighbouring steps to steady the tails."""
from __future__ import annotations

import numpy as np


def residual_quantiles(residuals: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Quantiles of actual - forecast per horizon step.

    residuals: [n, O, H] from the backtest origins; returns [n, len(quantiles), H].
    Each step's quantiles are smoothed with its neighbours' (weights 1/4, 1/2, 1/4) to steady
    the tails. The levels are widened by the split-conformal finite-sample correction, so a
    0.9 band covers about 90% out of sample.
    """
    n, count, horizon = residuals.shape
    if count == 0:
        return np.zeros((n, len(quantiles), horizon))
    by_step = np.sort(np.swapaxes(residuals, 1, 2), axis=2)  # [n, H, O]
    position = _conformal_levels(quantiles, count) * (count - 1)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, count - 1)
    fraction = position - below
    raw = by_step[:, :, below] * (1 - fraction) + by_step[:, :, above] * fraction  # [n, H, Q]
    padded = np.concatenate([raw[:, :1], raw, raw[:, -1:]], axis=1)
    smoothed = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]
    return np.swapaxes(smoothed, 1, 2)


def _conformal_levels(quantiles: np.ndarray, samples: int) -> np.ndarray:
    """Push each level away from the median by the finite-sample correction (m + 1) / m."""
    widened = 0.5 + (quantiles - 0.5) * (samples + 1) / samples
    return np.clip(widened, 0.0, 1.0)

