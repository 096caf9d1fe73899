"""Exponential smoothing of a whole batch at once, as linear maps.

The models need the smoothed level only at the backtest origins, not at every step. Since
smoothing is linear in the values, the level at a few columns is one matrix product of the
values with those columns of the filter's matrix (``exponential_level_at``): BLAS does
that several times faster than filtering every step.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import lfilter, lfilter_zi

# Smoothing forgets 1 - (1 - alpha)^k of its start after k steps; this many steps of
# warm-up make the start state irrelevant for every alpha used here (>= 0.02).
WARMUP_STEPS = 240
# Steps per block of a long series' smoothing (exponential_level).
BLOCK = 32


def exponential_level(values: np.ndarray, alpha: float) -> np.ndarray:
    """Simple exponential smoothing along the last axis; ``level[..., t]`` has seen values up to t.

    The filter starts in the steady state of the first value (level = first value). A long
    series is smoothed in blocks of BLOCK steps: within each block from a zero start, as one
    matrix product for all of them, then each block's start carried in from the block
    before, a recurrence over blocks rather than steps (about 3 times faster than a filter
    over every step).
    """
    if alpha == 1.0:  # no smoothing: the level is the last value
        return values
    dtype, length = values.dtype, values.shape[-1]
    if length < 2 * BLOCK:
        return _filter(np.array([alpha], dtype), np.array([1.0, alpha - 1.0], dtype), values)
    rows = values.reshape(-1, length)
    blocks = -(-length // BLOCK)
    padded = np.zeros((len(rows), blocks * BLOCK), dtype)  # the padding only follows the values
    padded[:, :length] = rows
    level = (padded.reshape(-1, BLOCK) @ _within_block(alpha, dtype)).reshape(len(rows), blocks, BLOCK)
    # the level before block k: end[k - 1], with end[k] = within[k, -1] + (1 - alpha)^BLOCK end[k - 1]
    carry = (1.0 - alpha) ** BLOCK
    ends = lfilter(np.array([1.0], dtype), np.array([1.0, -carry], dtype), level[:, :, -1], axis=-1,
                   zi=(carry * rows[:, :1]).astype(dtype))[0]
    level += (np.concatenate([rows[:, :1], ends[:, :-1]], axis=1)[:, :, None]
              * ((1.0 - alpha) ** np.arange(1, BLOCK + 1)).astype(dtype))
    return level.reshape(len(rows), -1)[:, :length].reshape(values.shape)


def _filter(b: np.ndarray, a: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The filter b/a along the last axis, from the steady state of the first value."""
    zi = (lfilter_zi(b, a) * values[..., :1]).astype(values.dtype)
    return lfilter(b, a, values, axis=-1, zi=zi)[0]


@lru_cache(maxsize=8)
def _within_block(alpha: float, dtype: np.dtype) -> np.ndarray:
    """[BLOCK, BLOCK]: the level at column i of a block from a zero start, weighing value j."""
    step = np.arange(BLOCK)
    lag = step[None, :] - step[:, None]
    matrix = np.where(lag >= 0, alpha * (1.0 - alpha) ** np.maximum(lag, 0), 0.0).astype(dtype)
    matrix.flags.writeable = False  # shared by every call with the same key
    return matrix


def exponential_level_at(values: np.ndarray, alpha: float, at: np.ndarray) -> np.ndarray:
    """``exponential_level(values, alpha)[:, at]`` of a [n, T] batch, as one product."""
    return values @ _level_columns(alpha, values.shape[1], tuple(at), values.dtype)


@lru_cache(maxsize=64)
def _level_columns(alpha: float, length: int, at: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """The columns ``at`` of the [T, T] matrix of the smoothing (row j: the weights of
    value j), found by smoothing the identity."""
    matrix = np.ascontiguousarray(exponential_level(np.eye(length), alpha)[:, at], dtype=dtype)
    matrix.flags.writeable = False  # shared by every call with the same key
    return matrix
