"""Point-forecast models, each evaluated at many forecast origins at once.

``predict(values, origins, horizon)`` returns one ``[n, len(origins), horizon]`` array per
variant in ``descriptions`` (each in words, as a forecast's ``model`` names it): for origin o the model has seen ``values[:, :o]`` and forecasts
``values[:, o : o + horizon]``. The same call gives the rolling backtest (origins inside the
history) and the real forecast (origin T). A model yields several variants when they share
most of their work (a seasonal profile with several dampings of its deviation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .histogram import decaying_percentile
from .seasonality import DAY
from .smoothing import WARMUP_STEPS, brown_level_and_trend, damped_steps, exponential_level


class Model(Protocol):
    @property
    def descriptions(self) -> tuple[str, ...]:
        """One description in words per variant ``predict`` returns, as a forecast's ``model`` shows it."""

    def min_points(self) -> int:
        """Fewest history points before the earliest origin for the model to make sense."""

    def predict(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> list[np.ndarray]: ...


class SingleVariant:
    """A model with one variant: it defines ``description`` and ``forecast``."""

    @property
    def descriptions(self) -> tuple[str, ...]:
        return (self.description,)

    def predict(self, values, origins, horizon):
        return [self.forecast(values, origins, horizon)]


def _flat(at_origins: np.ndarray, horizon: int) -> np.ndarray:
    """A flat forecast [n, O, H] as a read-only view of the [n, O] value at each origin."""
    return np.broadcast_to(at_origins[..., None], at_origins.shape + (horizon,))


def _warm_start(origins: np.ndarray) -> int:
    """First index worth filtering from: enough warm-up before the earliest origin."""
    return max(0, int(origins[0]) - WARMUP_STEPS)


@dataclass(frozen=True)
class Level(SingleVariant):
    """Simple exponential smoothing of the level, forecast flat (alpha = 1 is the naive forecast)."""

    alpha: float

    @property
    def description(self) -> str:
        return "last value" if self.alpha == 1.0 else f"smoothed level (alpha {self.alpha:g})"

    def min_points(self) -> int:
        return 1

    def forecast(self, values, origins, horizon):
        start = _warm_start(origins)
        level = exponential_level(values[:, start:], self.alpha)
        return _flat(np.take(level, origins - 1 - start, axis=1), horizon)


@dataclass(frozen=True)
class DampedTrend(SingleVariant):
    """Brown's double exponential smoothing with a damped trend."""

    alpha: float
    phi: float

    description = "damped trend"

    def min_points(self) -> int:
        return 4

    def forecast(self, values, origins, horizon):
        start = _warm_start(origins)
        level, trend = brown_level_and_trend(values[:, start:], self.alpha)
        at = origins - 1 - start
        return (np.take(level, at, axis=1)[:, :, None]
                + np.take(trend, at, axis=1)[:, :, None] * damped_steps(self.phi, horizon).astype(values.dtype))


@dataclass(frozen=True)
class LinearTrend(SingleVariant):
    """The seeds' rule: a least-squares line through the last day, from the last value."""

    step_seconds: float

    description = "linear trend over the last day"

    @property
    def window(self) -> int:
        return max(2, int(DAY / self.step_seconds))

    def min_points(self) -> int:
        return 2

    def forecast(self, values, origins, horizon):
        # per-origin least-squares slope over the (up to) `window` points before it, via cumsums
        # over the stretch the windows cover (positions below are relative to its start)
        # in float64 whatever the input: the cumulative sums below cancel badly in float32
        first = max(int(origins[0]) - self.window, 0)
        dtype = values.dtype
        values, origins = values[:, first:].astype(np.float64), origins - first
        t = np.arange(values.shape[1], dtype=np.float64)
        sums = [np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(v, axis=1)], axis=1)
                for v in (values, values * t)]
        lo = np.maximum(origins - self.window, 0)
        count = (origins - lo).astype(np.float64)
        sum_t = (origins - 1 + lo) * count / 2.0
        sum_tt = ((origins - 1) * origins * (2 * origins - 1) - (lo - 1) * lo * (2 * lo - 1)) / 6.0
        sum_y = np.take(sums[0], origins, axis=1) - np.take(sums[0], lo, axis=1)
        sum_ty = np.take(sums[1], origins, axis=1) - np.take(sums[1], lo, axis=1)
        spread = count * sum_tt - sum_t ** 2
        slope = np.where(spread > 0, (count * sum_ty - sum_t * sum_y) / np.where(spread > 0, spread, 1.0), 0.0)
        steps = np.arange(1, horizon + 1)
        return (np.take(values, origins - 1, axis=1)[:, :, None] + slope[..., None] * steps).astype(dtype)


@dataclass(frozen=True, eq=False)
class SeasonalProfile:
    """The same phase of the last period (``cycles`` = 1) or the median of the last three
    (``cycles`` = 3, so one odd or missing cycle does not pull it), plus the current
    deviation from that profile, smoothed and carried forward: held (damping 1) or fading
    by ``damping ** h`` at step h. One variant per damping; they share the profile.

    ``period`` is one period in steps for every row, or one per row (a detected period);
    ``reach`` is then the longest period any row could have, so that the history the model
    needs, and with it the backtest, does not depend on which series share a batch.
    ``kind`` names the period in words ("daily"), for the descriptions.
    """

    period: int | np.ndarray
    cycles: int
    alpha: float
    reach: int = 0
    dampings: tuple[float, ...] = (1.0,)
    kind: str = ""

    @property
    def descriptions(self) -> tuple[str, ...]:
        base = f"{self.kind or f'{self.period}-step'} seasonal profile"
        cycles = "last cycle" if self.cycles == 1 else f"median of {self.cycles} cycles"
        return tuple(f"{base} ({cycles})" if phi == 1.0 else f"{base} ({cycles}, deviation fading)"
                     for phi in self.dampings)

    @property
    def longest(self) -> int:
        return self.reach or int(np.max(self.period))

    def __post_init__(self):
        if self.cycles not in (1, 3):
            raise ValueError(f"cycles must be 1 or 3, got {self.cycles}")

    def min_points(self) -> int:
        return self.cycles * self.longest

    def predict(self, values, origins, horizon):
        periods, which = np.unique(self.period, return_inverse=True)
        if periods.size == 1:
            return self._predict(values, origins, horizon, int(periods[0]))
        # rows share a few periods: each group is forecast with its own, as slices not gathers
        out = [np.empty((values.shape[0], len(origins), horizon), dtype=values.dtype) for _ in self.dampings]
        for group, period in enumerate(periods):
            rows = np.flatnonzero(which == group)
            for whole, part in zip(out, self._predict(values[rows], origins, horizon, int(period))):
                whole[rows] = part
        return out

    def _predict(self, values, origins, horizon, period: int):
        k = self.cycles
        # the same start for every period, so the backtest does not depend on the batch
        start = max(_warm_start(origins), k * self.longest)
        # profile[t] = median over j = 1..k of values[t - j p], for t in [start, end); past the
        # last origin only the next min(horizon, p) steps are used, all built from seen data
        end = int(origins[-1]) + min(horizon, period)
        back = [values[:, start - j * period:end - j * period] for j in range(1, k + 1)]
        profile = _median_of_three(*back) if k == 3 else back[0]
        seen = min(end, values.shape[1]) - start
        deviation = exponential_level(values[:, start:start + seen] - profile[:, :seen], self.alpha)
        # step h repeats the phase h mod p of the coming period
        ahead = np.take(profile, np.arange(horizon) % period + (origins - start)[:, None], axis=1)  # [n, O, H]
        now = np.take(deviation, origins - 1 - start, axis=1)[:, :, None]
        steps = np.arange(1, horizon + 1)
        return [ahead + now if phi == 1.0 else ahead + now * (phi ** steps).astype(values.dtype)
                for phi in self.dampings]


def _median_of_three(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Elementwise median of three arrays (several times faster than np.median on a stack)."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


@dataclass(frozen=True)
class HistogramPercentile(SingleVariant):
    """VPA-style decaying-histogram percentile, forecast flat."""

    half_life: float  # steps
    percentile: float = 0.5

    @property
    def description(self) -> str:
        return f"decaying-histogram p{round(100 * self.percentile)}"

    def min_points(self) -> int:
        return 1

    def forecast(self, values, origins, horizon):
        flat = decaying_percentile(values, origins, self.half_life, self.percentile)
        return _flat(flat, horizon)
