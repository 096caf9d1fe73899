"""Quartermaster's forecasting core: quantile forecasts of workload demand, pure numpy/scipy.

Public API (stable; the operator and ``shared/bench/forecast_eval.py`` call it):

``forecast(history, step_seconds, horizon, quantiles) -> ndarray[len(quantiles), horizon]``
    One series, oldest sample first, regularly spaced ``step_seconds`` apart.
``forecast_many(histories, step_seconds, horizon, quantiles) -> ndarray[n, len(quantiles), horizon]``
    Many series of one length ([n, T]), vectorised over series.
``forecast_detailed(history, step_seconds, horizon, quantiles, defaults=ForecastDefaults(), options=ForecastOptions()) -> Forecast``
    One series, with the tier that produced it ("model" | "robust" | "default"), the model
    in words (the dominant one and its share: "daily seasonal profile (median of 3
    cycles), 70 %") and a confidence in [0, 1] for comparison with a policy's confidence
    threshold: on the model tier, (1 - the median's weighted absolute percentage error on
    the series' own backtest) times (the share of the newest third of the backtest's
    actuals the top quantile covered, calibrated on the older two thirds, over that
    quantile's level, at most 1); on the robust tier, 1 - the recent values' WAPE around
    their median, discounted by how little history there is; 0 on the default tier.
``forecast_many_detailed(histories, step_seconds, horizon, quantiles, defaults=ForecastDefaults(), options=ForecastOptions()) -> Forecasts``
    Many series ([n, T]) at once, with the same per series: ``values`` [n, len(quantiles),
    horizon], ``tier`` and ``model`` (lists of n names), ``confidence`` [n];
    ``Forecasts.series(i)`` is row i as the ``Forecast`` that ``forecast_detailed`` gives.
``ForecastDefaults(value=0.0)``
    What to forecast when a series has no usable sample at all (tier "default").
``ForecastOptions(...)``
    Which layers of the model tier run (``options``); the defaults are the product's.
``AccuracyState.empty(n)`` / ``update_accuracy(state, realised, median_forecast, upper_forecast,
half_life=288) -> AccuracyState``
    Live accuracy per series: ``scaled_error`` (MASE-style), ``coverage`` (share at or under
    the upper forecast), ``confidence``; pure, the state is a frozen dataclass of arrays.

Guarantees: outputs are finite and non-decreasing across quantiles (in ascending quantile
order; rows come back in the order asked). ValueError only for input that is not a series
(wrong type or shape, non-numeric) or for invalid arguments (step_seconds <= 0, horizon < 1,
quantiles outside [0, 1]). NaN gaps, counter resets, constant, all-zero, negative, very
short and very long histories all give a forecast (see ``hygiene``).

How it works: every eligible model (the last value and a smoothed level, the
seeds' linear trend, a VPA-style decaying-histogram median, seasonal profiles for the day,
the week and a detected sub-daily cycle, each with its deviation from the profile held or
fading) is run at up to 64 rolling-origin backtest points over about the last day; each series
combines the models whose backtest error is within 25% of its best one. Each quantile is
then an anchor (the combined forecast or the last value, whichever has the lowest backtest
pinball loss for that quantile) plus a conformal offset:
a quantile of that anchor's backtest residuals, pooled over horizon steps once each step's
spread is divided out. Each quantile is then averaged, half and half, with the analogs'
(``analogs``): the quantiles of what followed the past states, over the whole history,
most like the current one (deviation from the smoothed level, value, age, seasonal phase),
as many as the square root of the states there are. The backtest
runs in float32 on the series less its last value. Too little history for a backtest gives
the "robust" tier (quantiles of the recent values); none at all gives the configured
default. A large batch is cleaned and forecast in chunks, several at once on threads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .accuracy import AccuracyState, update_accuracy
from .engine import TIER_NAMES, BatchForecast, forecast_batch
from .hygiene import as_batch, as_series
from .options import ForecastOptions

__all__ = ["AccuracyState", "Forecast", "ForecastDefaults", "ForecastOptions", "Forecasts", "forecast",
           "forecast_detailed", "forecast_many", "forecast_many_detailed", "update_accuracy"]


@dataclass(frozen=True)
class ForecastDefaults:
    """Configured fallback for series without any usable sample."""

    value: float = 0.0


@dataclass(frozen=True)
class Forecast:
    """A quantile forecast of one series and where it came from."""

    values: np.ndarray  # [len(quantiles), horizon]
    quantiles: tuple[float, ...]
    step_seconds: float
    tier: str  # "model" | "robust" | "default"
    model: str  # the dominant model and its share, in words
    confidence: float  # in [0, 1], from the backtest's error and recent coverage (module docstring)

    def at(self, quantile: float) -> np.ndarray:
        """The forecast row for one of the requested quantiles."""
        return self.values[self.quantiles.index(quantile)]


@dataclass(frozen=True)
class Forecasts:
    """Quantile forecasts of a batch of series and where each came from."""

    values: np.ndarray  # [n, len(quantiles), horizon]
    quantiles: tuple[float, ...]
    step_seconds: float
    tier: list[str]  # [n] "model" | "robust" | "default"
    model: list[str]  # [n] each row's dominant model and its share, in words
    confidence: np.ndarray  # [n] in [0, 1], from the backtest's error and recent coverage

    def at(self, quantile: float) -> np.ndarray:
        """The forecasts [n, horizon] for one of the requested quantiles."""
        return self.values[:, self.quantiles.index(quantile)]

    def series(self, index: int) -> Forecast:
        """Row ``index`` as the forecast of one series."""
        return Forecast(values=self.values[index], quantiles=self.quantiles, step_seconds=self.step_seconds,
                        tier=self.tier[index], model=self.model[index],
                        confidence=float(self.confidence[index]))


def forecast(history, step_seconds, horizon, quantiles) -> np.ndarray:
    """Quantile forecast [len(quantiles), horizon] of one series."""
    return forecast_detailed(history, step_seconds, horizon, quantiles).values


def forecast_many(histories, step_seconds, horizon, quantiles) -> np.ndarray:
    """Quantile forecasts [n, len(quantiles), horizon] of a batch of series [n, T]."""
    return _run(as_batch(histories), step_seconds, horizon, quantiles, ForecastDefaults()).values


def forecast_detailed(history, step_seconds, horizon, quantiles, defaults: ForecastDefaults = ForecastDefaults(),
                      options: ForecastOptions = ForecastOptions()) -> Forecast:
    """Quantile forecast of one series with its tier, model description and confidence."""
    return forecast_many_detailed(as_series(history)[None, :], step_seconds, horizon, quantiles,
                                  defaults, options).series(0)


def forecast_many_detailed(histories, step_seconds, horizon, quantiles,
                           defaults: ForecastDefaults = ForecastDefaults(),
                           options: ForecastOptions = ForecastOptions()) -> Forecasts:
    """Quantile forecasts of a batch of series [n, T], each with its tier, model description
    and confidence: what the control cycle needs to forecast every workload at once and
    still gate each decision on its own series' confidence."""
    result = _run(as_batch(histories), step_seconds, horizon, quantiles, defaults, options)
    return Forecasts(values=result.values, quantiles=tuple(float(q) for q in quantiles),
                     step_seconds=float(step_seconds), tier=[TIER_NAMES[code] for code in result.tier],
                     model=result.model, confidence=result.confidence)


def _run(batch: np.ndarray, step_seconds, horizon, quantiles, defaults: ForecastDefaults,
         options: ForecastOptions = ForecastOptions()) -> BatchForecast:
    step_seconds, horizon, levels = _check_arguments(step_seconds, horizon, quantiles)
    # the engine wants distinct ascending levels; map its rows back to the order asked
    distinct, order = np.unique(levels, return_inverse=True)
    result = forecast_batch(batch, step_seconds, horizon, distinct, float(defaults.value), options)
    return BatchForecast(result.values[:, order], result.tier, result.model, result.confidence)


def _check_arguments(step_seconds, horizon, quantiles) -> tuple[float, int, np.ndarray]:
    step = float(step_seconds)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"step_seconds must be a positive number, got {step_seconds!r}")
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive whole number of steps, got {horizon!r}")
    levels = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    if levels.size == 0 or not np.all((levels >= 0) & (levels <= 1)):
        raise ValueError(f"quantiles must be probabilities in [0, 1], got {quantiles!r}")
    return step, int(horizon), levels
