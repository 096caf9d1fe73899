"""The batch forecasting engine behind every public entry point.

For a batch of series it cleans each row, picks its tier (model, robust statistics or
configured defaults), runs every eligible model at the rolling-backtest origins and at the
real origin, combines them per series by backtest loss, calibrates each quantile on the
backtest residuals of an anchor between the combined forecast and the last value, and
averages it with the analogs' quantile. Rows go in chunks, several at once on threads
(numpy releases the GIL in its loops).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .accuracy import confidence_from_wape, wape
from .analogs import analog_quantiles
from .calibration import origin_weights, quantile_forecasts
from .hygiene import CleanBatch, clean
from .models import DampedTrend, HistogramPercentile, Level, LinearTrend, Model, SeasonalProfile
from .seasonality import (CALENDAR_PERIODS_SECONDS, CYCLE_PERIODS_SECONDS, DAY, MIN_AUTOCORRELATION,
                          detect_period, period_steps, seasonality_strengths)
from .selection import BacktestDesign, combine

TIER_MODEL, TIER_ROBUST, TIER_DEFAULT = 0, 1, 2
TIER_NAMES = ("model", "robust", "default")

# The backtest covers about one day of recent origins, at most MAX_ORIGINS of them, an odd
# number of steps apart so that they do not all fall on one phase of a two-step alternation.
BACKTEST_SECONDS = DAY
MAX_ORIGINS = 64
# Fewer backtest origins than this and the measured accuracy means little: robust tier.
MIN_ORIGINS = 8
# Rows are forecast in chunks of this many: big enough that numpy, not Python, takes the time.
CHUNK_ROWS = 512
# Chunks are forecast on this many threads at once: the CPUs this process may run on, up to 4.
WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
# Robust tier: quantiles of the most recent values, this many at most.
ROBUST_WINDOW = 24
# Share of the analogs' forecast in each quantile of a model-tier forecast: an equal
# average of the two, the combination that needs no weights estimated.
ANALOG_WEIGHT = 0.5
# A seasonal model's deviation from its profile is held, or fades by these factors per step.
SEASONAL_DAMPINGS = (1.0, 0.8)


@dataclass(frozen=True)
class BatchForecast:
    values: np.ndarray  # [n, len(quantiles), horizon]
    tier: np.ndarray  # [n] TIER_* codes
    model: list[str]  # [n] name of the model (or combination) that produced each row
    confidence: np.ndarray  # [n] in [0, 1]


def candidate_models(values: np.ndarray, step_seconds: float) -> tuple[list[Model], np.ndarray, np.ndarray]:
    """Every model worth trying on this batch, [n, M] which rows may use which model
    (seasonal models only where that seasonality shows), one column per model, and [n]
    each row's strongest seasonal period in steps (0 where none shows)."""
    n, length = values.shape
    day_steps = DAY / step_seconds
    models: list[Model] = [Level(1.0), Level(0.2), Level(0.05),
                           DampedTrend(0.1, 0.9), LinearTrend(step_seconds),
                           HistogramPercentile(half_life=max(day_steps, 1.0))]
    eligible = [np.ones(n, dtype=bool)] * len(models)
    calendar = period_steps(CALENDAR_PERIODS_SECONDS, step_seconds, length)
    cycles = period_steps(CYCLE_PERIODS_SECONDS, step_seconds, length)
    strengths = seasonality_strengths(values, calendar + cycles)
    for period in calendar:
        shows = strengths[period] >= MIN_AUTOCORRELATION
        models += [SeasonalProfile(period, 1, 0.3, dampings=SEASONAL_DAMPINGS),
                   SeasonalProfile(period, 3, 0.3, dampings=SEASONAL_DAMPINGS)]
        eligible += [shows, shows]
    if cycles:
        cycle, found = detect_period(strengths, cycles)
        models.append(SeasonalProfile(cycle, 3, 0.3, label="auto", reach=max(cycles), dampings=SEASONAL_DAMPINGS))
        eligible.append(found)
    period = np.zeros(n, dtype=np.intp)
    if calendar + cycles:
        strongest, found = detect_period(strengths, calendar + cycles)
        period[found] = strongest[found]
    return models, np.stack(eligible, axis=1), period


def backtest_plan(models: list[Model], step_seconds: float, length: int,
                  horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Choose the origins (as long a backtest as the history allows, up to a day) and say
    which models have enough history before the earliest origin: (usable [M], origins)."""
    target_span = max(int(BACKTEST_SECONDS / step_seconds), MIN_ORIGINS)
    stride = -(-target_span // MAX_ORIGINS) | 1  # rounded up to odd
    usable = np.array([length - horizon - m.min_points() >= MIN_ORIGINS * stride for m in models])
    if not usable.any():
        return usable, np.array([length], dtype=np.intp)
    earliest = max(m.min_points() for m, ok in zip(models, usable) if ok) + 1
    span = min(target_span, length - horizon - earliest)
    design = BacktestDesign(count=span // stride + 1, stride=stride)
    return usable, design.origins(length, horizon, earliest)


def forecast_batch(batch: np.ndarray, step_seconds: float, horizon: int,
                   quantiles: np.ndarray, default_value: float) -> BatchForecast:
    """Quantile forecasts [n, len(quantiles), horizon] for a raw [n, T] batch (quantiles
    ascending), cleaned and forecast in chunks of rows, several chunks at once on threads
    (numpy releases the GIL in its loops) when there are more than one."""
    n = batch.shape[0]
    out = np.empty((n, len(quantiles), horizon))
    tier = np.empty(n, dtype=np.int8)
    confidence = np.empty(n)
    names = [""] * n
    # which models exist, and so the backtest plan, depends only on the step and the cleaned
    # length (not on the rows), so every chunk, and a series forecast alone, shares one plan
    no_rows = clean(batch[:0]).values
    plan = backtest_plan(candidate_models(no_rows, step_seconds)[0], step_seconds, no_rows.shape[1], horizon)

    def forecast_chunk(rows: slice) -> None:  # each chunk writes only its own rows
        chunk = _forecast_clean(clean(batch[rows]), plan, step_seconds, horizon, quantiles, default_value)
        out[rows], tier[rows], confidence[rows], names[rows] = chunk.values, chunk.tier, chunk.confidence, chunk.model

    chunks = [slice(start, start + CHUNK_ROWS) for start in range(0, n, CHUNK_ROWS)]
    if len(chunks) > 1 and WORKERS > 1:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(forecast_chunk, chunks))
    else:
        for rows in chunks:
            forecast_chunk(rows)
    return BatchForecast(out, tier, names, confidence)


def _forecast_clean(clean: CleanBatch, plan: tuple[np.ndarray, np.ndarray], step_seconds: float,
                    horizon: int, quantiles: np.ndarray, default_value: float) -> BatchForecast:
    """Forecasts of a cleaned chunk of rows, each from its tier: "model" when the history
    supports a backtest (``plan``: usable models and origins, from ``backtest_plan``) and at
    least half of it (and no less than ``model_points(horizon)`` samples) was observed;
    "robust" for any other row with an observation; "default" (every quantile =
    ``default_value``) for rows with none."""
    values = clean.values
    n, length = values.shape
    out = np.full((n, len(quantiles), horizon), float(default_value))
    tier = np.full(n, TIER_DEFAULT, dtype=np.int8)
    confidence = np.zeros(n)
    names = np.full(n, "default", dtype=object)

    usable, origins = plan
    model_rows = np.flatnonzero((clean.observed >= model_points(horizon)) & (2 * clean.observed >= length))
    if len(origins) > MIN_ORIGINS and model_rows.size:
        # Every model, and the seasonality tests, are shift-equivariant, so they run on the
        # series less its last value, in float32: half the memory traffic, and a large level
        # (a counter) keeps its precision.
        level = values[model_rows, -1:]
        centred = (values[model_rows] - level).astype(np.float32)
        models, eligible, period = candidate_models(centred, step_seconds)
        # a model no row may use is not worth running
        run = usable & eligible.any(axis=0)
        models = [m for m, ok in zip(models, run) if ok]
        variants = np.array([name for m in models for name in m.names], dtype=object)
        eligible = np.repeat(eligible[:, run], [len(m.names) for m in models], axis=1)
        out[model_rows], weights, error = _model_tier(centred, level, models, eligible, period, origins,
                                                      horizon, quantiles)
        confidence[model_rows] = confidence_from_wape(error)
        # rows share a few combinations: name each once
        combinations, which = np.unique(weights > 0, axis=0, return_inverse=True)
        names[model_rows] = np.array(["+".join(variants[used]) for used in combinations], dtype=object)[which]
        tier[model_rows] = TIER_MODEL

    robust_rows = np.flatnonzero((clean.observed > 0) & (tier == TIER_DEFAULT))
    if robust_rows.size:
        out[robust_rows], confidence[robust_rows] = _robust_tier(
            values[robust_rows], clean.observed[robust_rows], horizon, quantiles)
        tier[robust_rows] = TIER_ROBUST
        names[robust_rows] = "recent_quantiles"

    has_data = tier != TIER_DEFAULT
    out[has_data] -= clean.reset_offset[has_data, None, None]
    out = np.where(clean.nonnegative[:, None, None] & has_data[:, None, None], np.maximum(out, 0.0), out)
    # every row non-decreasing across quantiles, and finite whatever happened upstream
    out = np.sort(np.nan_to_num(out, nan=float(default_value), posinf=np.finfo(float).max,
                                neginf=-np.finfo(float).max), axis=1)
    return BatchForecast(out, tier, names.tolist(), confidence)


def model_points(horizon: int) -> int:
    """Fewest observed samples for the model tier."""
    return 2 * horizon + MIN_ORIGINS


def _model_tier(centred, level, models, eligible, period, origins, horizon, quantiles):
    """Quantile forecasts [n, Q, H], ensemble weights [n, variants], backtest WAPE [n] of
    series given as centred [n, T] (float32) plus level [n, 1]; period: [n] each row's
    seasonal period in steps, 0 for none."""
    # np.take keeps rows outermost (indexing [:, idx] would lay the result out origin-major,
    # and every later operation would then stride through memory)
    actuals = np.take(centred, origins[:-1, None] + np.arange(horizon), axis=1)  # [n, O-1, H]
    ensemble = combine([p for m in models for p in m.predict(centred, origins, horizon)], actuals, eligible)
    # calibration weighs each origin by its age and by how close its level forecast was to today's
    forecast = quantile_forecasts(ensemble.forecasts, np.take(centred, origins - 1, axis=1), actuals, quantiles,
                                  origin_weights(ensemble.forecasts[:, :, 0]))
    # averaged, quantile by quantile, with the analogs' forecast: a second opinion from the
    # whole history, which the day of backtest origins does not see
    forecast = (1.0 - ANALOG_WEIGHT) * forecast + ANALOG_WEIGHT * analog_quantiles(centred, horizon, quantiles, period)
    error = wape(np.abs(ensemble.residuals).mean(axis=(1, 2)),
                 np.abs(actuals + level[:, :, None].astype(np.float32)).mean(axis=(1, 2)))
    return forecast + level[:, :, None], ensemble.weights, error


def _robust_tier(values, observed, horizon, quantiles):
    """Too little history for a backtest: quantiles of the most recent values, flat."""
    recent = values[:, -ROBUST_WINDOW:]
    levels = np.quantile(recent, quantiles, axis=1).T  # [n, Q]
    median = np.median(recent, axis=1, keepdims=True)
    # how well the median describes the recent values, discounted by how little history there is
    error = wape(np.abs(recent - median).mean(axis=1), np.abs(recent).mean(axis=1))
    confidence = confidence_from_wape(error) * np.minimum(observed / model_points(horizon), 1.0)
    return np.repeat(levels[:, :, None], horizon, axis=2), confidence
