"""Point-forecast models, each evaluated at many forecast origins at once.

``predict(values, origins, horizon)`` returns one ``[n, len(origins), horizon]`` array per
variant in ``descriptions`` (each in words, as a forecast's ``model`` names it): for origin o the model has seen ``values[:, :o]`` and forecasts
``values[:, o : o + horizon]``. The same call gives the rolling backtest (origins inside the
history) and the real forecast (origin T). A model yields several variants when they share
most of their work (a seasonal profile with several dampings of its deviation).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from .histogram import decaying_percentile
from .seasonality import DAY
from .smoothing import WARMUP_STEPS, exponential_level_at


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
        if self.alpha == 1.0:
            return _flat(np.take(values, origins - 1, axis=1), horizon)
        start = _warm_start(origins)
        return _flat(exponential_level_at(values[:, start:], self.alpha, origins - 1 - start), horizon)


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
        # the slope over the (up to) `window` points before each origin is linear in them:
        # one product with the least-squares weights, over the stretch the windows cover
        first = max(int(origins[0]) - self.window, 0)
        slope = values[:, first:] @ _slope_weights(self.window, values.shape[1] - first, tuple(origins - first),
                                                   values.dtype)
        return np.take(values, origins - 1, axis=1)[:, :, None] + slope[:, :, None] * np.arange(
            1, horizon + 1, dtype=values.dtype)


@lru_cache(maxsize=16)
def _slope_weights(window: int, length: int, origins: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """[length, O]: column o weighs values[lo:o], lo = max(o - window, 0), so that their
    product is the least-squares slope of those values (0 with fewer than two)."""
    weights = np.zeros((length, len(origins)))
    for column, origin in enumerate(origins):
        t = np.arange(max(origin - window, 0), origin, dtype=np.float64)
        spread = np.square(t - t.mean()).sum() if t.size else 0.0
        if spread > 0:
            weights[t.astype(np.intp), column] = (t - t.mean()) / spread
    matrix = weights.astype(dtype)
    matrix.flags.writeable = False  # shared by every call with the same key
    return matrix


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
        now = exponential_level_at(values[:, start:start + seen] - profile[:, :seen], self.alpha,
                                   origins - 1 - start)[:, :, None]
        # step h repeats the phase h mod p of the coming period
        ahead = np.take(profile, np.arange(horizon) % period + (origins - start)[:, None], axis=1)  # [n, O, H]
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
