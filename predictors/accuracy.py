"""Live accuracy tracking: fold realised values into per-series error and coverage figures.

State is a small frozen dataclass of [n] arrays; ``update_accuracy`` returns a new one. All
figures are running means that turn into exponentially weighted ones (half-life
``half_life`` updates), so they describe recent accuracy. Rows whose realised value is missing (NaN) are left unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

DEFAULT_HALF_LIFE = 288.0  # one day of 5-minute updates
MAX_RATIO = 1e9


@dataclass(frozen=True)
class AccuracyState:
    """Per-series running accuracy of the median and upper-quantile forecasts."""

    updates: np.ndarray  # [n] realised values folded in so far
    last_value: np.ndarray  # [n] previous realised value (NaN before the first)
    abs_error: np.ndarray  # [n] weighted mean |realised - median forecast|
    abs_change: np.ndarray  # [n] weighted mean |one-step change| of the realised series (MASE scale)
    abs_level: np.ndarray  # [n] weighted mean |realised|
    covered: np.ndarray  # [n] weighted share of realised values at or under the upper forecast

    @classmethod
    def empty(cls, n: int) -> AccuracyState:
        zeros = np.zeros(n)
        return cls(np.zeros(n, dtype=np.int64), np.full(n, np.nan), zeros, zeros, zeros, zeros)

    @property
    def scaled_error(self) -> np.ndarray:
        """MASE-style error: mean absolute error over mean absolute one-step change (0 if unknown)."""
        return safe_ratio(self.abs_error, self.abs_change)

    @property
    def coverage(self) -> np.ndarray:
        """Share of realised values at or under the upper-quantile forecast (NaN before any)."""
        return np.where(self.updates > 0, self.covered, np.nan)

    @property
    def confidence(self) -> np.ndarray:
        """1 - weighted absolute percentage error, clipped to [0, 1]; 0 before any update."""
        return np.where(self.updates > 0, confidence_from_wape(wape(self.abs_error, self.abs_level)), 0.0)


def update_accuracy(state: AccuracyState, realised, median_forecast, upper_forecast,
                    half_life: float = DEFAULT_HALF_LIFE) -> AccuracyState:
    """Fold one realised value per series ([n] arrays) into ``state``.

    ``median_forecast`` and ``upper_forecast`` are what was forecast for this time (for
    example the 0.5 and 0.9 rows of an earlier forecast at the matching step).
    """
    realised, median, upper = (np.asarray(a, dtype=np.float64) for a in (realised, median_forecast, upper_forecast))
    if not realised.shape == median.shape == upper.shape == state.updates.shape:
        raise ValueError(f"expected arrays of shape {state.updates.shape}, got "
                         f"{realised.shape}, {median.shape}, {upper.shape}")
    seen = np.isfinite(realised) & np.isfinite(median) & np.isfinite(upper)
    # a plain running mean until there are enough updates for the decay to take over
    decay = 1.0 - 0.5 ** (1.0 / half_life)
    weight = np.maximum(1.0 / (state.updates + 1), decay)

    def blend(old, new, mask=seen):
        return np.where(mask, old + weight * (np.where(mask, new, 0.0) - old), old)

    has_previous = seen & np.isfinite(state.last_value)
    change = np.abs(realised - np.where(has_previous, state.last_value, 0.0))
    change_weight = np.maximum(1.0 / np.maximum(state.updates, 1), decay)  # one change fewer than values
    abs_change = np.where(has_previous, state.abs_change + change_weight * (change - state.abs_change),
                          state.abs_change)
    return replace(
        state,
        updates=state.updates + seen,
        last_value=np.where(seen, realised, state.last_value),
        abs_error=blend(state.abs_error, np.abs(realised - median)),
        abs_change=abs_change,
        abs_level=blend(state.abs_level, np.abs(realised)),
        covered=blend(state.covered, (realised <= upper).astype(np.float64)),
    )


def confidence_from_wape(error: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1]: 1 for a perfect forecast, 0 once the error is as large as the level."""
    return np.clip(1.0 - error, 0.0, 1.0)


def forecast_confidence(error: np.ndarray, coverage: np.ndarray, level: float) -> np.ndarray:
    """Confidence in [0, 1] of a forecast from its own backtest: ``confidence_from_wape`` of
    the median's error, times how much of its nominal ``level`` the top quantile's
    recent out-of-sample ``coverage`` reached (1 when it covered at least as often as it
    should: a band that held scores full marks, one that broke loses in proportion)."""
    return confidence_from_wape(error) * np.clip(coverage / max(level, np.finfo(float).tiny), 0.0, 1.0)


def wape(abs_error: np.ndarray, abs_level: np.ndarray) -> np.ndarray:
    """Weighted absolute percentage error, as a ratio of mean absolute error to mean level."""
    return safe_ratio(abs_error, abs_level)


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where both are 0 and 1 where only the denominator is;
    capped at MAX_RATIO, so a vanishing denominator gives a large but finite figure."""
    safe = np.where(denominator > 0, denominator, 1.0)
    with np.errstate(over="ignore"):
        ratio = np.where(denominator > 0, numerator / safe, np.where(numerator > 0, 1.0, 0.0))
    return np.minimum(ratio, MAX_RATIO)
