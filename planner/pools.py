"""Decisions about a ResourcePool's figures: its strategy's parameters, each resource's
pressure, and when its capacity runs out.

Pure code (numpy/scipy, no I/O): the control cycle passes plain values for one pool and
one resource ("cpu", "memory", "nvidia.com/gpu", "pods") at a time.

strategy_parameters(strategy, coverage=None) -> StrategyParameters
    What an allocation strategy means in numbers (the table is in its docstring).
pressure(capacity, requested, used, forecast, buffer, warning, critical, emergency)
    -> PressureDecision | None
    How full a resource is, judged on the largest of what is requested, what is used and
    what is forecast plus the strategy's headroom.
capacity_projection(timestamps, demand, capacity, now, growth_per_month=(0.10, 0.25, 0.50),
                    max_days=730.0) -> CapacityProjection
    When the pool's demand reaches its capacity: on the trend of its daily peaks, and under
    fixed monthly growth rates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import theilslopes

DAY_SECONDS = 86400.0
# The average Gregorian month, so that twelve months of growth make a year's.
MONTH_DAYS = 30.44
# A day's peak counts once at least this share of the day was observed: a day seen for
# less may have missed its busy hours, and its maximum would read as a fall in demand.
MIN_DAY_SHARE = 0.5
# Fewer daily peaks than this and a line through them says little: fit all samples instead.
MIN_PEAK_DAYS = 3
# theilslopes takes the median over every pair of points (memory grows with the square of
# their number), so a fit through all samples uses at most this many, evenly spaced.
MAX_FIT_SAMPLES = 1000


@dataclass(frozen=True)
class StrategyParameters:
    quantile: float  # the forecast quantile the pool plans for
    horizon_seconds: int  # how far ahead the pool looks
    buffer: float  # headroom fraction added on top of the forecast for pressure
    scale_down_delay_seconds: int  # reaction speed: how long demand must stay lower before giving back


_FIXED_STRATEGIES = {
    "Conservative": StrategyParameters(0.95, 3600, 0.20, 1800),
    "Balanced": StrategyParameters(0.90, 1800, 0.10, 600),
    "Aggressive": StrategyParameters(0.75, 900, 0.05, 120),
}
# Adaptive plans like Balanced; only its buffer moves, with the measured coverage.
_ADAPTIVE = StrategyParameters(0.90, 1800, 0.10, 600)
# A ScalingPolicy whose target is in no ResourcePool plans as Balanced over 15 minutes: the
# defaults its fields had before a pool's strategy could set them.
NO_POOL_DEFAULTS = StrategyParameters(0.90, 900, 0.10, 600)
ADAPTIVE_MIN_BUFFER, ADAPTIVE_MAX_BUFFER = 0.05, 0.30
# Each point of coverage missing below the planned quantile adds two points of buffer.
ADAPTIVE_BUFFER_PER_MISS = 2.0


def strategy_parameters(strategy: str, coverage: float | None = None) -> StrategyParameters:
    """The numbers behind a ResourcePool's allocation strategy.

    ============  ========  =======  ==========================  ==================
    strategy      quantile  horizon  buffer                      scale-down delay
    ============  ========  =======  ==========================  ==================
    Conservative  0.95      3600 s   0.20                        1800 s
    Balanced      0.90      1800 s   0.10                        600 s
    Aggressive    0.75      900 s    0.05                        120 s
    Adaptive      0.90      1800 s   0.05 + 2 x max(0, 0.90 -    600 s
                                     coverage), within
                                     [0.05, 0.30]; 0.10 while
                                     coverage is unknown
    ============  ========  =======  ==========================  ==================

    Conservative looks further ahead, at a higher quantile, keeps more headroom and gives
    capacity back slowly; Aggressive the opposite. Adaptive plans like Balanced but sizes
    its headroom by how the forecast has actually done: ``coverage`` is the measured share
    of realised demand at or under the upper forecast (``AccuracyState.coverage``). While
    that share meets the planned quantile the forecast is trusted and the buffer is the
    smallest; each point it falls short adds two points of buffer, up to the ceiling. An
    unknown coverage (None or NaN) gives Balanced's buffer. Other strategies ignore
    ``coverage``. An unknown strategy raises ValueError naming it.
    """
    if strategy in _FIXED_STRATEGIES:
        return _FIXED_STRATEGIES[strategy]
    if strategy != "Adaptive":
        known = ", ".join([*_FIXED_STRATEGIES, "Adaptive"])
        raise ValueError(f"unknown allocation strategy {strategy!r} (known: {known})")
    if coverage is None or math.isnan(coverage):
        return _ADAPTIVE
    shortfall = max(0.0, _ADAPTIVE.quantile - coverage)  # no shortfall: the floor
    return replace(_ADAPTIVE, buffer=min(ADAPTIVE_MIN_BUFFER + ADAPTIVE_BUFFER_PER_MISS * shortfall,
                                         ADAPTIVE_MAX_BUFFER))


@dataclass(frozen=True)
class PressureDecision:
    level: str  # "Normal" | "Warning" | "Critical" | "Emergency"
    fraction: float  # demand / capacity
    basis: str  # "requested" | "used" | "forecast": which figure set the demand
    demand: float


def pressure(capacity: float, requested: float, used: float | None, forecast: float | None,
             buffer: float, warning: float, critical: float, emergency: float) -> PressureDecision | None:
    """A resource's pressure level, on the largest of its demand figures.

    demand = max(requested, used, forecast x (1 + buffer)), fraction = demand / capacity;
    the level is Emergency, Critical or Warning at fraction >= that threshold, else Normal.

    Requests are what the scheduler has promised away, usage is what is really taken
    (above requests when pods burst past them), and the forecast plus the strategy's
    buffer is what will be needed before capacity could be added: whichever is largest is
    the one that runs the pool out, so it sets the pressure. A missing figure (None or NaN:
    usage not yet read, no forecast yet) is left out. On a tie the earlier of requested,
    used, forecast is named, so the basis moves only when a later figure really exceeds
    it. A resource with no capacity (capacity <= 0 or NaN) has no pressure: None.
    """
    if not capacity > 0:
        return None
    if not math.isfinite(requested):
        raise ValueError(f"requested must be a finite number, got {requested!r}")
    basis, demand = "requested", float(requested)
    for name, figure in (("used", used), ("forecast", None if forecast is None else forecast * (1.0 + buffer))):
        if figure is not None and figure > demand:  # NaN compares false: left out as well
            basis, demand = name, float(figure)
    fraction = demand / capacity
    level = next((name for name, threshold in (("Emergency", emergency), ("Critical", critical),
                                               ("Warning", warning)) if fraction >= threshold), "Normal")
    return PressureDecision(level, fraction, basis, demand)


@dataclass(frozen=True)
class GrowthProjection:
    growth_per_month: float
    exhausts_at: float | None  # unix seconds
    days_left: float | None


@dataclass(frozen=True)
class CapacityProjection:
    trend_per_day: float  # units per day, from the history's daily peaks
    exhausts_at: float | None  # unix seconds
    days_left: float | None
    scenarios: tuple[GrowthProjection, ...]


def capacity_projection(timestamps, demand, capacity: float, now: float,
                        growth_per_month=(0.10, 0.25, 0.50), max_days: float = 730.0) -> CapacityProjection:
    """When a pool's demand for one resource reaches its capacity.

    ``timestamps`` [T] unix seconds on a regular grid, oldest first; ``demand`` [T] the
    pool's aggregate usage, NaN where unknown; ``now`` unix seconds.

    Capacity runs out at the peak, not at the mean: a pool whose mean has room to spare is
    still short every afternoon its peak exceeds capacity, and peaks can grow faster than
    the mean (a busier rush hour on a flat night). So the trend is a line through the
    daily peaks: the maximum of each UTC day observed for at least half its samples
    (a day seen for less may have missed its busy hours). The line is Theil-Sen's
    (``scipy.stats.theilslopes``: the median of the slopes between every pair of peaks),
    which a few unusual days do not tilt. With fewer than 3 such days the line goes
    through the finite samples themselves (at most 1,000, evenly spaced), as the only
    trend there is.

    The projection starts from the recent peak: the highest finite sample in the day up
    to the last finite one (the latest of equal ones), at that sample's time.
    ``exhausts_at`` is when the trend line from there reaches ``capacity``; ``days_left``
    is the days from ``now`` until then (0 when the recent peak is already at or above
    capacity, or the date has passed); both None when the trend is flat or falling or the
    date is more than ``max_days`` away.

    Each scenario instead grows the recent peak by g per month, compounded over 30.44-day
    months: it reaches capacity after 30.44 x log(capacity / peak) / log(1 + g) days; None
    beyond ``max_days`` (and for a peak at or below zero, or g <= 0, which never grow).

    A resource without capacity (capacity <= 0 or NaN) never runs out, and a demand with
    no finite sample gives no trend (0): every date and day count is then None.
    """
    capacity, now = float(capacity), float(now)
    times = np.asarray(timestamps, dtype=np.float64)
    values = np.asarray(demand, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"timestamps must be 1-D (oldest first), got shape {times.shape}")
    if values.shape != times.shape:
        raise ValueError(f"demand must have the shape of timestamps {times.shape}, got {values.shape}")
    if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
        raise ValueError("timestamps must be finite and strictly increasing (oldest first)")
    # the grid's step, for how many samples make a day; a single sample is a day's worth
    step_seconds = float(np.median(np.diff(times))) if times.size > 1 else DAY_SECONDS
    finite = np.isfinite(values)
    times, values = times[finite], values[finite]
    rates = tuple(float(g) for g in growth_per_month)
    if times.size == 0:
        return CapacityProjection(0.0, None, None, tuple(GrowthProjection(g, None, None) for g in rates))

    trend = _peak_trend(times, values, step_seconds)
    # the latest of equal highs: a level held until now is the level now
    recent = np.flatnonzero(times >= times[-1] - DAY_SECONDS)[::-1]
    peak_index = recent[np.argmax(values[recent])]
    peak, peak_time = float(values[peak_index]), float(times[peak_index])

    def days_to_capacity(growth: float, compounded: bool) -> float | None:
        """Days after the recent peak until demand growing by ``growth`` (units per day,
        or a fraction per month compounded) reaches capacity; None if it never does."""
        if peak >= capacity:
            return 0.0
        if not growth > 0 or (compounded and peak <= 0):
            return None
        if compounded:
            return MONTH_DAYS * math.log(capacity / peak) / math.log1p(growth)
        return (capacity - peak) / growth

    def projection(days_from_peak: float | None) -> tuple[float | None, float | None]:
        if not capacity > 0 or days_from_peak is None:
            return None, None
        exhausts_at = peak_time + days_from_peak * DAY_SECONDS
        days_left = max(0.0, (exhausts_at - now) / DAY_SECONDS)
        return (exhausts_at, days_left) if days_left <= max_days else (None, None)

    scenarios = tuple(GrowthProjection(g, *projection(days_to_capacity(g, compounded=True))) for g in rates)
    return CapacityProjection(trend, *projection(days_to_capacity(trend, compounded=False)), scenarios)


def _peak_trend(times: np.ndarray, values: np.ndarray, step_seconds: float) -> float:
    """Units per day of a Theil-Sen line through the daily peaks of the finite samples
    (``times`` ascending), or through the samples when fewer than MIN_PEAK_DAYS days count."""
    day = np.floor(times / DAY_SECONDS)
    # sorted by day, then value: each day's last entry is its peak
    order = np.lexsort((values, day))
    sorted_day = day[order]
    last_of_day = np.r_[sorted_day[1:] != sorted_day[:-1], True]
    first_of_day = np.r_[True, last_of_day[:-1]]
    samples = np.diff(np.r_[np.flatnonzero(first_of_day), order.size])
    enough = samples >= max(1.0, MIN_DAY_SHARE * DAY_SECONDS / step_seconds)
    peaks = order[last_of_day][enough]
    if peaks.size >= MIN_PEAK_DAYS:
        x, y = times[peaks], values[peaks]
    else:
        every = np.linspace(0, times.size - 1, min(times.size, MAX_FIT_SAMPLES)).round().astype(np.intp)
        x, y = times[every], values[every]
    if np.ptp(x) == 0:  # a single instant has no slope
        return 0.0
    return float(theilslopes(y, x / DAY_SECONDS).slope)
