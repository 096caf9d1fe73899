"""Rolling-origin backtest and the per-series ensemble built from its losses."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BacktestDesign:
    """Where the rolling backtest puts its origins: ``count`` origins, ``stride`` steps apart,
    the newest one ``horizon`` steps before the end so every forecast can be scored."""

    count: int
    stride: int

    def origins(self, length: int, horizon: int, earliest: int) -> np.ndarray:
        """Backtest origins (ascending) followed by the real forecast origin ``length``."""
        newest = length - horizon
        back = newest - self.stride * np.arange(self.count)
        back = back[back >= max(earliest, 1)][::-1]
        return np.append(back, length).astype(np.intp)


@dataclass(frozen=True)
class Ensemble:
    """The combined forecast at every origin and what the combination was made of."""

    forecasts: np.ndarray  # [n, O, H] combined point forecasts (last origin = the real one)
    residuals: np.ndarray  # [n, O - 1, H] actual - combined forecast at the backtest origins
    weights: np.ndarray  # [n, M] model weights, rows sum to 1


# Only models whose loss is within this factor of the best one get weight, and their weight
# falls off with the squared loss ratio, so a clear winner is picked and near-ties are averaged.
TOLERANCE = 1.25


def combine(predictions: list[np.ndarray], actuals: np.ndarray, eligible: np.ndarray,
            tolerance: float = TOLERANCE) -> Ensemble:
    """Weight models by their backtest loss on each series and combine their forecasts.

    predictions: per model [n, O, H]; actuals: [n, O - 1, H] for the backtest origins;
    eligible: [n, M] which models may be used on which series; tolerance: the loss ratio
    to the best model within which a model gets weight.
    """
    scratch = np.empty_like(actuals)
    losses = np.empty(eligible.shape)
    for column, prediction in enumerate(predictions):
        np.subtract(prediction[:, :-1], actuals, out=scratch)
        losses[:, column] = np.abs(scratch, out=scratch).mean(axis=(1, 2))
    losses = np.where(eligible, losses, np.inf)
    best = losses.min(axis=1, keepdims=True)
    ratio = np.where(best > 0, losses / np.where(best > 0, best, 1.0), np.where(losses > 0, np.inf, 1.0))
    raw = np.where(ratio <= tolerance, 1.0 / ratio ** 2, 0.0)
    weights = raw / raw.sum(axis=1, keepdims=True)
    forecasts = np.zeros(predictions[0].shape, dtype=predictions[0].dtype)
    for column, prediction in enumerate(predictions):
        weight = weights[:, column]
        if weight.any():  # most models carry no weight on any row of a batch
            forecasts += weight.astype(forecasts.dtype)[:, None, None] * prediction
    return Ensemble(forecasts, actuals - forecasts[:, :-1], weights)
