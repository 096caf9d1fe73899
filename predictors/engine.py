"""The batch forecasting engine behind every public entry point.

For a batch of series it cleans each row, picks its tier (model, robust statistics or
configured defaults), runs every eligible model at the rolling-backtest origins and at the
real origin, combines them per series by backtest loss, calibrates each quantile on the
backtest residuals of an anchor between the combined forecast and the last value, and
averages it with the analogs' quantile. Rows go in chunks, several at once on threads
(numpy releases the GIL in its loops).
"""
from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController

from .accuracy import confidence_from_wape, forecast_confidence, wape
from .analogs import analog_quantiles
from .calibration import quantile_forecasts
from .hygiene import CleanBatch, clean
from .models import HistogramPercentile, Level, LinearTrend, Model, SeasonalProfile
from .options import SEASONAL_DAMPINGS, ForecastOptions
from .seasonality import (CALENDAR_PERIODS_SECONDS, CYCLE_PERIODS_SECONDS, DAY, MIN_AUTOCORRELATION, WEEK,
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
# Rows are forecast in chunks of this many: big enough that numpy, not Python, takes the
# time (256 rows took 10 % more CPU time than 1,024 on 10,000 series).
CHUNK_ROWS = 1024
# glibc's malloc settings for a batch of several chunks (mallopt): arrays up to this size
# come from the heap rather than from a fresh mapping, and freed memory goes back to the
# kernel only beyond the trim threshold, so a chunk reuses the memory the one before it
# freed. These are the ceilings glibc's own sliding thresholds reach, fixed from the start:
# otherwise the kernel maps and zeroes the arrays afresh, 30,000 to 60,000 page faults in a
# call on 10,000 series (under 200 with these) and a tenth of its CPU time, at the same
# peak memory.
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 32 << 20, 64 << 20
# Chunks are forecast on this many threads at once: the CPUs this process may run on, up to 4.
WORKERS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
# Robust tier: quantiles of the most recent values, this many at most.
ROBUST_WINDOW = 24
# The calendar periods in words, for the models' descriptions.
PERIOD_WORDS = {DAY: "daily", WEEK: "weekly"}


@dataclass(frozen=True)
class BatchForecast:
    values: np.ndarray  # [n, len(quantiles), horizon]
    tier: np.ndarray  # [n] TIER_* codes
    model: list[str]  # [n] the dominant model and its share, in words
    confidence: np.ndarray  # [n] in [0, 1]


def candidate_models(values: np.ndarray, step_seconds: float,
                     dampings: tuple[float, ...] = SEASONAL_DAMPINGS) -> tuple[list[Model], np.ndarray, np.ndarray]:
    """Every model worth trying on this batch, [n, M] which rows may use which model
    (seasonal models only where that seasonality shows), one column per model, and [n]
    each row's strongest seasonal period in steps (0 where none shows); ``dampings``: those
    of the seasonal models' deviations."""
    n, length = values.shape
    day_steps = DAY / step_seconds
    # (a smoothed level at alpha 0.2 and Brown's damped trend were here too: left out,
    # the forecasts of every trace family were as good or better, predictors/README.md)
    models: list[Model] = [Level(1.0), Level(0.05), LinearTrend(step_seconds),
                           HistogramPercentile(half_life=max(day_steps, 1.0))]
    eligible = [np.ones(n, dtype=bool)] * len(models)
    calendar = period_steps(CALENDAR_PERIODS_SECONDS, step_seconds, length)
    cycles = period_steps(CYCLE_PERIODS_SECONDS, step_seconds, length)
    strengths = seasonality_strengths(values, calendar + cycles)
    for period in calendar:
        shows = strengths[period] >= MIN_AUTOCORRELATION
        kind = PERIOD_WORDS.get(period * step_seconds, "")
        models += [SeasonalProfile(period, 1, 0.3, dampings=dampings, kind=kind),
                   SeasonalProfile(period, 3, 0.3, dampings=dampings, kind=kind)]
        eligible += [shows, shows]
    if cycles:
        cycle, found = detect_period(strengths, cycles)
        models.append(SeasonalProfile(cycle, 3, 0.3, reach=max(cycles), dampings=dampings,
                                      kind="detected-cycle"))
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


def forecast_batch(batch: np.ndarray, step_seconds: float, horizon: int, quantiles: np.ndarray,
                   default_value: float, options: ForecastOptions = ForecastOptions()) -> BatchForecast:
    """Quantile forecasts [n, len(quantiles), horizon] for a raw [n, T] batch (quantiles
    ascending), cleaned and forecast in chunks of rows, several chunks at once on threads
    (numpy releases the GIL in its loops) when there are more than one; ``options``: which
    layers run."""
    n = batch.shape[0]
    out = np.empty((n, len(quantiles), horizon))
    tier = np.empty(n, dtype=np.int8)
    confidence = np.empty(n)
    names = [""] * n
    # which models exist, and so the backtest plan, depends only on the step and the cleaned
    # length (not on the rows), so every chunk, and a series forecast alone, shares one plan
    no_rows = clean(batch[:0].astype(np.float64, copy=False)).values
    plan = backtest_plan(candidate_models(no_rows, step_seconds)[0], step_seconds, no_rows.shape[1], horizon)

    def forecast_chunk(rows: slice) -> None:  # each chunk writes only its own rows
        # a float32 batch is widened here, a chunk at a time, not whole
        chunk = _forecast_clean(clean(batch[rows].astype(np.float64, copy=False)), plan, step_seconds, horizon,
                                quantiles, default_value, options)
        out[rows], tier[rows], confidence[rows], names[rows] = chunk.values, chunk.tier, chunk.confidence, chunk.model

    chunks = [slice(start, start + CHUNK_ROWS) for start in range(0, n, CHUNK_ROWS)]
    if len(chunks) > 1:
        _keep_freed_memory()
    if len(chunks) > 1 and WORKERS > 1:
        # the chunks' small matrix products each on one BLAS thread: BLAS's own threads on
        # top of these contend for the same cores (10,000 series took 1.87 s, not 1.22 s)
        with _blas_threads().limit(limits=1, user_api="blas"), ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(forecast_chunk, chunks))
    else:
        for rows in chunks:
            forecast_chunk(rows)
    return BatchForecast(out, tier, names, confidence)


@cache
def _keep_freed_memory() -> None:
    """Set glibc's mmap and trim thresholds (MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES),
    once per process; another C library keeps its own policy (its mallopt, if it has one,
    may number its parameters otherwise)."""
    try:
        os.confstr("CS_GNU_LIBC_VERSION")  # a ValueError where the C library is not glibc
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, glibc's among them
    except (ValueError, OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES)
    mallopt(m_trim_threshold, TRIM_THRESHOLD_BYTES)


@cache
def _blas_threads() -> ThreadpoolController:
    """The BLAS libraries loaded, found once (scanning them takes tens of milliseconds)."""
    return ThreadpoolController()


def _forecast_clean(clean: CleanBatch, plan: tuple[np.ndarray, np.ndarray], step_seconds: float,
                    horizon: int, quantiles: np.ndarray, default_value: float,
                    options: ForecastOptions) -> BatchForecast:
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
        rows = slice(None) if model_rows.size == n else model_rows  # a slice does not copy
        level = values[rows, -1:]
        centred = np.subtract(values[rows], level, out=np.empty((model_rows.size, length), np.float32),
                              casting="same_kind")
        models, eligible, period = candidate_models(centred, step_seconds, options.seasonal_dampings)
        of_model = np.repeat(np.arange(len(models)), [len(m.descriptions) for m in models])  # each variant's model
        eligible = eligible[:, of_model]
        variants = np.array([words for m in models for words in m.descriptions])
        if options.only_model is not None:  # that one variant, on every row
            eligible = np.broadcast_to(variants == options.only_model, eligible.shape)
        eligible = eligible & ~np.isin(variants, options.without_models)
        # a model no row may use is not worth running
        run = usable & (np.bincount(of_model, weights=eligible.any(axis=0), minlength=len(models)) > 0)
        keep = run[of_model]
        models = [m for m, ok in zip(models, run) if ok]
        descriptions = np.array([words for m in models for words in m.descriptions], dtype=object)
        out[model_rows], weights, error, coverage = _model_tier(centred, level, models, eligible[:, keep], period,
                                                                origins, horizon, quantiles, options)
        confidence[model_rows] = forecast_confidence(error, coverage, float(quantiles[-1]))
        names[model_rows] = describe(descriptions, weights)
        tier[model_rows] = TIER_MODEL

    robust_rows = np.flatnonzero((clean.observed > 0) & (tier == TIER_DEFAULT))
    if robust_rows.size:
        out[robust_rows], confidence[robust_rows] = _robust_tier(
            values[robust_rows], clean.observed[robust_rows], horizon, quantiles)
        tier[robust_rows] = TIER_ROBUST
        names[robust_rows] = "quantiles of the recent values"

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


def describe(descriptions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ensemble weights [n, M], its dominant model and that model's share in
    words ("daily seasonal profile (median of 3 cycles), 70 %"): [n] strings."""
    dominant = weights.argmax(axis=1)
    share = np.rint(100 * weights[np.arange(len(weights)), dominant]).astype(int)
    # rows share a few (model, share) pairs: word each once
    pairs, which = np.unique(np.stack([dominant, share], axis=1), axis=0, return_inverse=True)
    return np.array([f"{descriptions[m]}, {s} %" for m, s in pairs], dtype=object)[which.reshape(-1)]


def _model_tier(centred, level, models, eligible, period, origins, horizon, quantiles, options):
    """Quantile forecasts [n, Q, H], ensemble weights [n, variants], the median's backtest
    WAPE [n] and the top quantile's recent coverage [n] (``quantile_forecasts``) of series
    given as centred [n, T] (float32) plus level [n, 1]; period: [n] each row's seasonal
    period in steps, 0 for none; options: which layers run."""
    # np.take keeps rows outermost (indexing [:, idx] would lay the result out origin-major,
    # and every later operation would then stride through memory)
    actuals = np.take(centred, origins[:-1, None] + np.arange(horizon), axis=1)  # [n, O-1, H]
    ensemble = combine([p for m in models for p in m.predict(centred, origins, horizon)], actuals, eligible,
                       options.ensemble_tolerance)
    forecast, coverage = quantile_forecasts(ensemble.forecasts, np.take(centred, origins - 1, axis=1), actuals,
                                            quantiles, options.anchor_shares)
    if options.analog_weight > 0:
        # averaged, quantile by quantile, with the analogs' forecast: a second opinion from the
        # whole history, which the day of backtest origins does not see
        forecast = ((1.0 - options.analog_weight) * forecast
                    + options.analog_weight * analog_quantiles(centred, horizon, quantiles, period))
    error = wape(np.abs(ensemble.residuals).mean(axis=(1, 2)),
                 np.abs(actuals + level[:, :, None].astype(np.float32)).mean(axis=(1, 2)))
    return forecast + level[:, :, None], ensemble.weights, error, coverage


def _robust_tier(values, observed, horizon, quantiles):
    """Too little history for a backtest: quantiles of the most recent values, flat."""
    recent = values[:, -ROBUST_WINDOW:]
    levels = np.quantile(recent, quantiles, axis=1).T  # [n, Q]
    median = np.median(recent, axis=1, keepdims=True)
    # how well the median describes the recent values, discounted by how little history there is
    error = wape(np.abs(recent - median).mean(axis=1), np.abs(recent).mean(axis=1))
    confidence = confidence_from_wape(error) * np.minimum(observed / model_points(horizon), 1.0)
    return np.repeat(levels[:, :, None], horizon, axis=2), confidence
