"""A rolling window of one signal's history per key, on a regular time grid, in memory.

Rows are keys (workloads), columns the grid times `end - (T-1)·step … end`. The window
slides as time passes; what was pulled before is kept, so each cycle only pulls the samples
since the last one. float32 halves the memory: 10,000 workloads × 7 days of 5-minute
samples is 80 MB a signal.
"""
from __future__ import annotations

from typing import Hashable, Iterable, Optional, Sequence

import numpy as np

MATRIX_ROWS = 1024  # rows `matrix` gathers at once: the gather is a temporary copy (8 MB a week of 5-minute steps)


class UsageHistory:
    def __init__(self, step_seconds: int, window_seconds: int) -> None:
        self.step = int(step_seconds)
        self.length = max(int(window_seconds // step_seconds), 2)
        self.end: Optional[float] = None  # grid time of the last column
        self._rows: dict[Hashable, int] = {}
        self._values = np.full((0, self.length), np.nan, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def timestamps(self) -> np.ndarray:
        end = 0.0 if self.end is None else self.end
        return end - self.step * np.arange(self.length - 1, -1, -1, dtype=np.float64)

    def advance(self, end: float) -> None:
        """Slide the window so that its last column is grid time `end` (never backwards)."""
        if self.end is not None and end <= self.end:
            return
        shift = self.length if self.end is None else int(round((end - self.end) / self.step))
        if shift >= self.length:
            self._values[:] = np.nan
        elif shift > 0:
            self._values[:, :-shift] = self._values[:, shift:]
            self._values[:, -shift:] = np.nan
        self.end = end

    def write(self, keys: Sequence[Hashable], timestamps: np.ndarray, values: np.ndarray) -> None:
        """Set the values of `keys` at `timestamps` (grid times; those outside the window are
        dropped). A pulled range replaces what was held for it, gaps included."""
        if self.end is None or not len(keys):
            return
        columns = np.rint((np.asarray(timestamps) - self.timestamps[0]) / self.step).astype(np.int64)
        inside = (columns >= 0) & (columns < self.length)
        if not inside.any():
            return
        rows = self._ensure_rows(keys)
        self._values[np.ix_(rows, columns[inside])] = np.asarray(values, dtype=np.float32)[:, inside]

    def matrix(self, keys: Sequence[Hashable], out: Optional[np.ndarray] = None) -> np.ndarray:
        """[len(keys), T]; NaN rows for keys never written. `out`: the array to fill (float32
        [len(keys), T]), so a caller's larger array takes the rows without a copy between."""
        if out is None:
            out = np.empty((len(keys), self.length), dtype=np.float32)
        out[:] = np.nan
        known = [(i, self._rows[k]) for i, k in enumerate(keys) if k in self._rows]
        for first in range(0, len(known), MATRIX_ROWS):
            positions, rows = map(list, zip(*known[first:first + MATRIX_ROWS]))
            out[positions] = self._values[rows]
        return out

    def forget(self, keep: Iterable[Hashable]) -> None:
        """Drop every key not in `keep` (deleted workloads), compacting the rows."""
        keep = set(keep)
        gone = [k for k in self._rows if k not in keep]
        if not gone:
            return
        kept = [k for k in self._rows if k in keep]
        self._values = self._values[[self._rows[k] for k in kept]]
        self._rows = {k: i for i, k in enumerate(kept)}

    def _ensure_rows(self, keys: Sequence[Hashable]) -> list[int]:
        new = [k for k in dict.fromkeys(keys) if k not in self._rows]
        if new:
            start = len(self._rows)
            for offset, key in enumerate(new):
                self._rows[key] = start + offset
            needed = start + len(new)
            if needed > self._values.shape[0]:
                grown = np.full((max(needed, 2 * self._values.shape[0]), self.length), np.nan, dtype=np.float32)
                grown[:self._values.shape[0]] = self._values
                self._values = grown
        return [self._rows[k] for k in keys]


def latest(values: np.ndarray, max_age: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's last finite value within the last `max_age` columns, and how many columns
    back it is (NaN and -1 where there is none: missing or stale)."""
    recent = values[:, -max_age:]
    finite = np.isfinite(recent)
    back = np.argmax(finite[:, ::-1], axis=1)
    found = finite.any(axis=1)
    picked = recent[np.arange(len(values)), recent.shape[1] - 1 - back] if len(values) else np.zeros(0)
    return np.where(found, picked, np.nan), np.where(found, back, -1)

