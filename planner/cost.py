"""Cost attribution as OpenCost does it: each workload is charged for the larger of what it
requests and what it uses, times the price, over time.

Inputs are arrays on a regular grid: `requests` and `usage` [n, R, T] for n rows (pods),
the R = 3 resources of `RESOURCES` (cores, bytes, GPUs), T grid times `timestamps` a
`step` apart; NaN where Prometheus had no sample. The sample at time t stands for the
interval [t, t + step): a window [start, end) charges each sample for the hours of that
interval inside it, so the newest sample counts only up to `now`, never for time that has
not passed.

Where only one of request and usage is known the known one is charged; where neither is,
nothing (no figure from missing data). GPUs have no usage series: their requests are charged.

Forecast rule (`spend`): what is spent so far in the day (month), plus the hourly rate of
the last hour (`RECENT_HOURS`) times the hours left to the day's (month's) end, in UTC.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Hashable, Sequence

import numpy as np

RESOURCES = ("cpu", "memory", "gpu")  # cores, bytes, GPUs
GIB = 2**30
HOUR = 3600.0
RECENT_HOURS = 1.0  # the forecast's rate is the cost of this many recent hours, per hour


@dataclass(frozen=True)
class Prices:
    """Per core-hour, per GiB-hour and per GPU-hour (OpenCost's published defaults)."""

    core_hour: float = 0.031611
    gib_hour: float = 0.004237
    gpu_hour: float = 0.95

    def per_unit_hour(self) -> np.ndarray:
        """[R]: the price of one unit of each of RESOURCES (a core, a byte, a GPU) for an hour."""
        return np.array([self.core_hour, self.gib_hour / GIB, self.gpu_hour])


def window_hours(timestamps: np.ndarray, step: float, start: float, end: float) -> np.ndarray:
    """[T]: the hours of each sample's interval [t, t + step) inside [start, end)."""
    lower = np.maximum(timestamps, start)
    upper = np.minimum(timestamps + step, end)
    return np.clip(upper - lower, 0.0, None) / HOUR


def charged(requests: np.ndarray, usage: np.ndarray) -> np.ndarray:
    """[n, R, T]: max(request, usage), the known one where only one is, 0 where neither is."""
    return np.nan_to_num(np.fmax(requests, usage), nan=0.0)


def costs_per_hour(requests: np.ndarray, usage: np.ndarray, unit_prices: np.ndarray) -> np.ndarray:
    """[n, R, T]: what each row costs per hour at each grid time; `unit_prices` [n, R] (or [R])."""
    prices = np.asarray(unit_prices, dtype=np.float64)
    return charged(requests, usage) * (prices[..., None] if prices.ndim == 2 else prices[None, :, None])


def group_rows(keys: Sequence[Hashable], values: np.ndarray) -> tuple[list[Hashable], np.ndarray]:
    """Rows of `values` with the same key summed: (the distinct keys in first-seen order, [k, ...])."""
    distinct = list(dict.fromkeys(keys))
    index = {k: i for i, k in enumerate(distinct)}
    sums = np.zeros((len(distinct), *values.shape[1:]))
    np.add.at(sums, np.array([index[k] for k in keys], dtype=np.int64), values)
    return distinct, sums


@dataclass(frozen=True)
class Allocation:
    """One group's charge over a window, per resource of RESOURCES."""

    cost: np.ndarray  # [R] currency
    charged_hours: np.ndarray  # [R] core-hours, byte-hours, GPU-hours charged
    request_average: np.ndarray  # [R] over the window's hours (NaN samples count as 0)
    usage_average: np.ndarray  # [R]
    hours: float  # the window's length

    @property
    def total(self) -> float:
        return float(self.cost.sum())


def allocations(keys: Sequence[Hashable], requests: np.ndarray, usage: np.ndarray, unit_prices: np.ndarray,
                timestamps: np.ndarray, step: float, start: float, end: float) -> dict[Hashable, Allocation]:
    """Each key's rows charged over [start, end)."""
    hours = window_hours(timestamps, step, start, end)
    length = float(hours.sum())
    amounts = np.stack([charged(requests, usage), np.nan_to_num(requests), np.nan_to_num(usage)])  # [3, n, R, T]
    per_row = amounts @ hours  # [3, n, R]: resource-hours
    cost = per_row[0] * np.broadcast_to(unit_prices, per_row[0].shape)
    distinct, sums = group_rows(keys, np.concatenate([per_row, cost[None]]).transpose(1, 0, 2))
    scale = 1.0 / length if length > 0 else 0.0
    return {k: Allocation(cost=row[3], charged_hours=row[0], request_average=row[1] * scale,
                          usage_average=row[2] * scale, hours=length) for k, row in zip(distinct, sums)}


@dataclass(frozen=True)
class Spend:
    today: float
    month: float
    forecast_today: float  # by the end of the UTC day
    forecast_month: float  # by the end of the UTC month


def calendar(now: float) -> tuple[float, float, float, float]:
    """(day start, day end, month start, month end) around `now`, UTC calendar boundaries."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return day.timestamp(), (day + timedelta(days=1)).timestamp(), month.timestamp(), next_month.timestamp()


def spend(hourly_cost: np.ndarray, timestamps: np.ndarray, step: float, now: float) -> Spend:
    """Spent today and this month up to `now`, and the forecasts to the ends of both
    (see the module's rule), from the cost per hour at each grid time [T] (rows and
    resources summed)."""
    day_start, day_end, month_start, month_end = calendar(now)

    def cost(start: float) -> float:
        return float(hourly_cost @ window_hours(timestamps, step, start, now))

    recent = max(min(RECENT_HOURS, (now - month_start) / HOUR), 0.0)
    rate = cost(now - recent * HOUR) / recent if recent > 0 else 0.0
    today, month = cost(day_start), cost(month_start)
    return Spend(today, month, today + rate * (day_end - now) / HOUR, month + rate * (month_end - now) / HOUR)
