"""Exponential smoothing as linear filters, so a whole batch runs in one C loop."""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter, lfilter_zi

# Smoothing forgets 1 - (1 - alpha)^k of its start after k steps; this many steps of
# warm-up make the start state irrelevant for every alpha used here (>= 0.02).
WARMUP_STEPS = 240


def exponential_level(values: np.ndarray, alpha: float) -> np.ndarray:
    """Simple exponential smoothing along the last axis; ``level[..., t]`` has seen values up to t.

    The filter starts in the steady state of the first value (level = first value).
    """
    if alpha == 1.0:  # no smoothing: the level is the last value
        return values
    b, a = np.array([alpha], dtype=values.dtype), np.array([1.0, alpha - 1.0], dtype=values.dtype)
    zi = (lfilter_zi(b, a) * values[..., :1]).astype(values.dtype)
    level, _ = lfilter(b, a, values, axis=-1, zi=zi)
    return level


def brown_level_and_trend(values: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Brown's double exponential smoothing: level and per-step trend after each value."""
    single = exponential_level(values, alpha)
    double = exponential_level(single, alpha)
    return 2.0 * single - double, (alpha / (1.0 - alpha)) * (single - double)


def damped_steps(phi: float, horizon: int) -> np.ndarray:
    """phi + phi^2 + ... + phi^h for h = 1..horizon: how far a damped trend carries."""
    return np.cumsum(phi ** np.arange(1, horizon + 1))
