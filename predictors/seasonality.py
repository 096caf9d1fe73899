"""Seasonal periods: the calendar ones (daily, weekly) and a per-series cycle (30 min to
12 h, hourly included) detected by autocorrelation."""
from __future__ import annotations

import numpy as np

HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0
# Fixed calendar periods, always tried when the history supports them.
CALENDAR_PERIODS_SECONDS = (DAY, WEEK)
# Periods a series may show on its own (cron jobs, batch cycles), found by autocorrelation;
# the day is a calendar period, tried anyway.
CYCLE_PERIODS_SECONDS = (1800.0, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 12 * HOUR)
# A period needs this many full cycles of history to be detected or used.
MIN_CYCLES = 2
# Autocorrelation at the period lag (after removing the slow level) above which it counts.
MIN_AUTOCORRELATION = 0.2


def period_steps(periods_seconds, step_seconds: float, history_points: int) -> list[int]:
    """The given periods in steps, keeping those the history is long enough to support."""
    periods = []
    for seconds in periods_seconds:
        steps = int(round(seconds / step_seconds))
        if steps >= 3 and history_points >= MIN_CYCLES * steps and steps not in periods:
            periods.append(steps)
    return periods


def autocorrelation(values: np.ndarray, lag: int) -> np.ndarray:
    """Per-row autocorrelation at ``lag`` of a [n, T] batch (0 for constant rows)."""
    centred = values - values.mean(axis=-1, keepdims=True)
    energy = np.einsum("ij,ij->i", centred, centred)
    cross = np.einsum("ij,ij->i", centred[:, lag:], centred[:, :-lag])
    return np.where(energy > 0, cross / np.where(energy > 0, energy, 1.0), 0.0)


def seasonality_strengths(values: np.ndarray, periods: list[int]) -> dict[int, np.ndarray]:
    """For each of ``periods``, the autocorrelation at that lag once the slow level is
    removed: [n] in [-1, 1].

    The level is a moving mean over the preceding period, so a trend or a level shift does
    not pass for seasonality; a missing (interpolated) cycle only lowers the score a little,
    since the other cycles still line up. Only the last few cycles are used.
    """
    periods = list(dict.fromkeys(periods))
    if periods:  # only the last few cycles of the longest period are read
        values = values[:, -min(values.shape[1], (MIN_CYCLES + 2) * max(periods)):]
    cumulative = np.cumsum(np.pad(values, ((0, 0), (1, 0))), axis=1)  # shared by every period
    length = values.shape[1]
    strengths = {}
    for period in periods:
        start = length - min(length, (MIN_CYCLES + 2) * period)
        if length - start - period <= period:
            strengths[period] = np.zeros(values.shape[0])
            continue
        # the level before t is the mean of values[t - period : t], for t in [start + period, T)
        level = (cumulative[:, start + period:length] - cumulative[:, start:length - period]) / period
        strengths[period] = autocorrelation(values[:, start + period:] - level, period)
    return strengths


def detect_period(strengths: dict[int, np.ndarray], candidates: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's strongest cycle among ``candidates`` (steps): (period [n], found [n]).

    Rows without a cycle scoring MIN_AUTOCORRELATION get found = False (the period is then
    the best-scoring one all the same).
    """
    scores = np.stack([strengths[p] for p in candidates], axis=1)
    best = scores.argmax(axis=1)
    return np.asarray(candidates, dtype=np.intp)[best], scores.max(axis=1) >= MIN_AUTOCORRELATION
