"""Live forecast accuracy: each cycle scores the forecasts the previous one made against
what has happened since (`predictors.update_accuracy`), per series key.

The forecasts of the last cycle are kept (their origin, median and upper rows); when new
grid times arrive, each is compared with the forecast for that many steps ahead.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Hashable, Optional, Sequence

import numpy as np

from quartermaster.predictors import AccuracyState, update_accuracy


def _reindexed(state: AccuracyState, rows: list[Optional[int]]) -> AccuracyState:
    """`state` with its rows in a new order; None makes an empty row (a new key)."""
    fresh = AccuracyState.empty(len(rows))
    if not rows:
        return fresh
    taken = np.array([-1 if r is None else r for r in rows])
    known = taken >= 0
    fields = {}
    for name in ("updates", "last_value", "abs_error", "abs_change", "abs_level", "covered"):
        column = getattr(fresh, name).copy()
        column[known] = getattr(state, name)[taken[known]]
        fields[name] = column
    return replace(fresh, **fields)


@dataclass(frozen=True)
class Accuracy:
    coverage: Optional[float]  # share of actuals at or under the upper forecast
    scaled_error: Optional[float]  # MASE-style
    samples: int


class ForecastTracker:
    def __init__(self) -> None:
        self._keys: list[Hashable] = []
        self._row: dict[Hashable, int] = {}
        self._state = AccuracyState.empty(0)
        self._origin: Optional[float] = None
        self._median = self._upper = np.zeros((0, 0))
        self._step = 1.0

    def score(self, keys: Sequence[Hashable], timestamps: np.ndarray, actual: np.ndarray) -> None:
        """Fold the actuals ([len(keys), T] at `timestamps`) that arrived after the last
        forecasts' origin, at most as far ahead as they reached."""
        old = self._row
        self._state = _reindexed(self._state, [old.get(k) for k in keys])
        if self._origin is not None:
            rows = [old.get(k) for k in keys]
            have = np.array([r is not None for r in rows])
            taken = np.array([r if r is not None else 0 for r in rows], dtype=np.int64)
            ahead = np.rint((timestamps - self._origin) / self._step).astype(np.int64)
            for column in np.flatnonzero((ahead >= 1) & (ahead <= self._median.shape[1])):
                h = ahead[column] - 1
                median = np.where(have, self._median[taken, h], np.nan) if len(keys) else np.zeros(0)
                upper = np.where(have, self._upper[taken, h], np.nan) if len(keys) else np.zeros(0)
                self._state = update_accuracy(self._state, actual[:, column], median, upper)
        self._keys = list(keys)
        self._row = {k: i for i, k in enumerate(self._keys)}

    def remember(self, origin: float, step: float, median: np.ndarray, upper: np.ndarray) -> None:
        """The forecasts just made for the keys last scored ([len(keys), H] each)."""
        self._origin, self._step = origin, step
        self._median, self._upper = np.asarray(median, np.float64), np.asarray(upper, np.float64)

    def accuracy(self, key: Hashable) -> Accuracy:
        row = self._row.get(key)
        if row is None or self._state.updates[row] == 0:
            return Accuracy(None, None, 0)
        return Accuracy(float(self._state.coverage[row]), float(self._state.scaled_error[row]),
                        int(self._state.updates[row]))
