"""Input hygiene: turn whatever the metrics layer hands over into finite, gap-free rows.

Rules (all vectorised over rows):
* input that is not a real-valued 1-D series (or, for batches, a 2-D array) raises ValueError;
* non-finite samples (NaN gaps, ±inf) are filled by linear interpolation between the
  neighbouring observations, and held flat before the first / after the last one;
* a mostly non-negative row treats its few negative samples as glitches (missing) and
  its forecasts are clipped at zero;
* a counter (monotone except for rare drops towards zero) is unrolled across resets, and
  the accumulated reset offset is removed again from its forecasts;
* only the most recent ``MAX_POINTS`` samples are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_POINTS = 8192
# A row with at most this share of negative samples is a non-negative signal with glitches.
NEGATIVE_GLITCH_SHARE = 0.05
# A counter drops at most this share of its steps, and each drop loses at least half its value.
COUNTER_DROP_SHARE = 0.01


@dataclass(frozen=True)
class CleanBatch:
    """Finite rows ready for the models, plus what is needed to map forecasts back."""

    values: np.ndarray  # [n, T] finite
    observed: np.ndarray  # [n] number of finite samples in the raw input
    reset_offset: np.ndarray  # [n] subtract from forecasts made on the unrolled counter
    nonnegative: np.ndarray  # [n] bool: clip forecasts at zero


def as_series(history) -> np.ndarray:
    """A 1-D float64 array, or ValueError when ``history`` is not a series."""
    array = _as_real_array(history, "history")
    if array.ndim != 1:
        raise ValueError(f"history must be 1-D (oldest first), got shape {array.shape}")
    return array


def as_batch(histories) -> np.ndarray:
    """A 2-D float64 array [n, T] (float32 is kept: the engine widens it a chunk of rows at a
    time, not whole), or ValueError when ``histories`` is not a batch of series."""
    array = _as_real_array(histories, "histories", keep=np.float32)
    if array.ndim != 2:
        raise ValueError(f"histories must be 2-D [series, time], got shape {array.shape}")
    return array


def _as_real_array(data, what: str, keep=None) -> np.ndarray:
    if data is None or isinstance(data, (str, bytes, dict)):
        raise ValueError(f"{what} must be an array of numbers, got {type(data).__name__}")
    try:
        array = np.asarray(data)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{what} must be a rectangular array of numbers: {exc}") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{what} must hold real numbers, got dtype {array.dtype}")
    return array if keep is not None and array.dtype == keep else array.astype(np.float64, copy=False)


def clean(batch: np.ndarray) -> CleanBatch:
    """Apply the hygiene rules to a [n, T] batch (see the module docstring)."""
    values = batch[:, -MAX_POINTS:]
    finite = np.isfinite(values)
    negative = finite & (values < 0)
    n_finite = finite.sum(axis=1)
    nonnegative = negative.sum(axis=1) <= NEGATIVE_GLITCH_SHARE * np.maximum(n_finite, 1)
    valid = finite & ~(negative & nonnegative[:, None])
    filled = _interpolate_gaps(values, valid)
    unrolled, offset = _unroll_counter_resets(filled, nonnegative)
    return CleanBatch(unrolled, valid.sum(axis=1), offset, nonnegative)


def _interpolate_gaps(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation across invalid samples; flat beyond the first/last valid one."""
    if valid.all():
        return values
    n, length = values.shape
    position = np.arange(length)
    prev_idx = np.maximum.accumulate(np.where(valid, position, -1), axis=1)
    next_idx = np.flip(np.minimum.accumulate(np.flip(np.where(valid, position, length), axis=1), axis=1),
                       axis=1)
    no_prev, no_next = prev_idx < 0, next_idx >= length
    prev_idx = np.where(no_prev, next_idx, prev_idx)
    next_idx = np.where(no_next, prev_idx, next_idx)
    empty = no_prev & no_next  # rows without any valid sample stay zero
    prev_idx = np.where(empty, 0, prev_idx)
    next_idx = np.where(empty, 0, next_idx)
    rows = np.arange(n)[:, None]
    prev_val = np.where(valid, values, 0.0)[rows, prev_idx]
    next_val = np.where(valid, values, 0.0)[rows, next_idx]
    span = np.maximum(next_idx - prev_idx, 1)
    weight = np.clip((position - prev_idx) / span, 0.0, 1.0)
    filled = prev_val + weight * (next_val - prev_val)
    return np.where(valid, values, np.where(empty, 0.0, filled))


def _unroll_counter_resets(values: np.ndarray, nonnegative: np.ndarray):
    """Unroll rows that look like counters; returns (values, offset to subtract afterwards)."""
    n, length = values.shape
    offset = np.zeros(n)
    if length < 3:
        return values, offset
    drops = (values[:, 1:] < values[:, :-1]).sum(axis=1)
    # cheap screen first: a counter drops rarely (a gauge drops about half the time)
    rows = np.flatnonzero(nonnegative & (drops >= 1) & (drops <= COUNTER_DROP_SHARE * (length - 1)))
    if rows.size == 0:
        return values, offset
    sub = values[rows]
    step = np.diff(sub, axis=1)
    rises = (step > 0).sum(axis=1)
    # a reset loses at least half of the counter's value (a gauge wobbling down does not)
    deep = (step < 0) & (sub[:, 1:] <= 0.5 * sub[:, :-1])
    counter = (deep.sum(axis=1) == drops[rows]) & (rises >= (length - 1) // 2)
    if not counter.any():
        return values, offset
    rows, sub, deep = rows[counter], sub[counter], deep[counter]
    # after a reset the counter restarts from zero, so the value before it is carried over
    carried = np.cumsum(np.where(deep, sub[:, :-1], 0.0), axis=1)
    unrolled = values.copy()
    unrolled[rows, 1:] += carried
    offset[rows] = carried[:, -1]
    return unrolled, offset
