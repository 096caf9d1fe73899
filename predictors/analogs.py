"""Analog quantile forecasts: what followed the moments in a series' history most like now.

The ensemble and its calibration see about a day of backtest origins; the analogs see the
whole history, conditioned on the state. For every past point with a known future, the
state is how far the value stood from its smoothed level, how far it stood from today's
value, how old it is and, on a seasonal series, how far its phase (time of day, on a daily
cycle) is from now. The nearest points (the square root of how many there are) say what
followed: each one's later values relative to its own short-term level, moved to today's
level. Their empirical quantiles are the forecast. A burst that usually lasts seven steps, or the evening ramp of a daily
pattern, is then forecast from the bursts and evenings that have been seen.
"""
from __future__ import annotations

import numpy as np

from .calibration import sample_quantiles
from .smoothing import exponential_level

# The nearest past states that make a forecast: the square root of how many there are to
# choose from (the usual rule for k nearest neighbours), and no fewer than this.
MIN_NEIGHBOURS = 10
# The smoothing of the level a state's deviation is measured from.
STATE_ALPHA = 0.1
# A neighbour's outcomes are taken relative to the mean of its last this many values (so
# one caught mid-burst brings the burst's shape, not its height), moved to today's mean.
OUTCOME_WINDOW = 3
# Added to the squared distance: AGE_WEIGHT times a state's age as a share of the history
# and, where a series has a seasonal period, PHASE_WEIGHT times the square of how many 24ths
# of that period (hours, of a day) its phase is from now's; the state's deviation and value
# count in units of the series' mean absolute step.
AGE_WEIGHT, PHASE_WEIGHT = 1.0, 3.0


def analog_quantiles(values: np.ndarray, horizon: int, quantiles: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Quantile forecasts [n, len(quantiles), horizon] of series values [n, T] (T > horizon)
    from their nearest past states. ``period`` [n] is each row's seasonal period in steps,
    0 for a row without one (its phase then plays no part)."""
    n, length = values.shape
    steps = np.diff(values, axis=1)
    step = np.abs(steps, out=steps).mean(axis=1, keepdims=True)
    scaled = values / np.where(step > 0, step, 1.0)
    deviation = scaled - exponential_level(scaled, scaled.dtype.type(STATE_ALPHA))
    known = length - horizon  # the library: every point whose next `horizon` values are known
    distance = np.square(deviation[:, :known] - deviation[:, -1:])
    distance += np.square(scaled[:, :known] - scaled[:, -1:])
    # age and phase add a penalty [L] per distinct period; rows take theirs
    periods, row_period = np.unique(period, return_inverse=True)
    age = AGE_WEIGHT * (length - np.arange(known)) / length
    lag = (length - 1 - np.arange(known))[None, :] % np.maximum(periods, 1)[:, None]
    phase = np.minimum(lag, periods[:, None] - lag) * (24.0 / np.maximum(periods, 1)[:, None])
    penalty = age + PHASE_WEIGHT * np.where(periods[:, None] > 0, np.square(phase), 0.0)
    distance += penalty.astype(distance.dtype)[row_period]
    count = min(max(MIN_NEIGHBOURS, round(np.sqrt(known))), known)
    nearest = np.argpartition(distance, count - 1, axis=1)[:, :count]  # [n, K]
    # each neighbour's last OUTCOME_WINDOW values and its next `horizon`, by flat index
    window = np.arange(1 - OUTCOME_WINDOW, horizon + 1)
    around = np.take(values, np.maximum(nearest[:, :, None] + window, 0) + (np.arange(n) * length)[:, None, None])
    level_then = around[:, :, :OUTCOME_WINDOW].mean(axis=2)
    level_now = values[:, -OUTCOME_WINDOW:].mean(axis=1, keepdims=True)
    outcomes = around[:, :, OUTCOME_WINDOW:] - (level_then - level_now)[:, :, None]  # [n, K, H]
    # per row and step, the empirical quantiles of the K outcomes, at the positions q (K - 1)
    # of numpy's default (linear) method, which the midpoint positions of sample_quantiles
    # give for these levels: so few samples set the 0.9 quantile inside their range
    ranked = np.sort(outcomes.transpose(0, 2, 1).reshape(n * horizon, count), axis=1)
    levels = (quantiles * (count - 1) + 0.5) / count
    return (sample_quantiles(ranked, np.broadcast_to(levels, (n * horizon, len(levels))))
            .reshape(n, horizon, -1).transpose(0, 2, 1))
