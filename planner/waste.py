"""Waste: workloads whose requests are far above what they use (rightsizing), workloads
that use nothing (idle), and days whose cost is far outside a workload's own history
(cost anomalies).

Pure code: arrays in, findings out, no I/O. The inputs are the cost grid's (see
planner/cost.py): `requests` and `usage` [n, R, T] per pod row, `keys` [n] the workload
each row belongs to, `unit_prices` [n, R], on a regular grid `step` seconds apart, NaN
where Prometheus had no sample. Only the last `rules.window_hours` of the grid are read
(a week by default), and a workload is judged only when it has samples for at least
`rules.coverage` of that window: no finding from missing data.

The rules (WasteRules' defaults):

* Rightsizing: per pod, the `usage_quantile` (p95) of usage over the week is below
  `rightsizing_ratio` (half) of the request per pod now, for cpu or memory. The recommended
  request is that p95 x `margin` (1.2: a fifth of headroom over what the pods used at
  their 95th percentile). The monthly saving is what the week would have cost with each
  pod's request lowered to the recommendation (charged, as OpenCost does, for
  max(request, usage): the hours the pods used more than the recommendation still count),
  scaled to a month of `MONTH_HOURS`.
* Idle: the workload's cpu usage (all its pods) stays at or under `idle_cores` (5
  millicores) at its p95 over the week. Its monthly saving is its whole cost, scaled to a
  month: nothing it does needs it running. An idle workload is not also a rightsizing one.
* Cost anomaly: the workload's cost per day over the window's whole days (24-hour
  periods back from the grid's last time), the latest day against the ones before it by
  the modified z-score of Iglewicz and Hoaglin, 0.6745 x (day - median) / MAD, MAD the
  median absolute deviation of the earlier days. Over `anomaly_threshold` (3.5, their
  recommendation) is an anomaly. Median and MAD, not mean and standard deviation: one
  earlier spike inflates a standard deviation until it hides the next; it barely moves a
  median. A history whose days are nearly equal has a MAD near 0, so the MAD is taken as at
  least `mad_floor` (1 %) of the median: a day 5 % over a flat history is not an anomaly.
  Only days above the history are reported (spend is what a budget is about); a day with
  fewer samples than `coverage` is not compared, and at least `min_history_days` earlier
  days are needed.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Hashable, Optional, Sequence

import numpy as np

from .cost import HOUR, RESOURCES, costs_per_hour
from .scaling import amount, quantile_label

MONTH_HOURS = 730.0  # 365 days x 24 hours / 12: the month savings are given for
DAY = 86400.0


class FindingKind(str, Enum):
    RIGHTSIZING = "Rightsizing"
    IDLE = "Idle"
    COST_ANOMALY = "CostAnomaly"


@dataclass(frozen=True)
class WasteRules:
    window_hours: float = 7 * 24
    coverage: float = 0.9  # of the window (and of each day compared) with samples
    usage_quantile: float = 0.95
    rightsizing_ratio: float = 0.5
    margin: float = 1.2
    idle_cores: float = 0.005
    anomaly_threshold: float = 3.5
    mad_floor: float = 0.01
    min_history_days: int = 5


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    workload: Hashable
    monthly_saving: Optional[float]  # in the prices' currency; None for an anomaly
    message: str
    recommended: tuple[tuple[str, float], ...] = ()  # rightsizing: (resource, request per pod)


def modified_z(history: np.ndarray, value: float, mad_floor: float = WasteRules.mad_floor) -> float:
    """Iglewicz and Hoaglin's modified z-score of `value` against `history`, the MAD taken
    as at least `mad_floor` of the median (and above 0)."""
    median = float(np.median(history))
    mad = max(float(np.median(np.abs(history - median))), mad_floor * abs(median), 1e-12)
    return 0.6745 * (value - median) / mad


def findings(keys: Sequence[Hashable], requests: np.ndarray, usage: np.ndarray, unit_prices: np.ndarray,
             step: float, rules: WasteRules = WasteRules()) -> list[Finding]:
    """Every workload's findings (see the module's rules), workloads in first-seen order."""
    samples = max(1, int(round(rules.window_hours * HOUR / step)))
    requests, usage = requests[..., -samples:], usage[..., -samples:]
    prices = np.broadcast_to(np.asarray(unit_prices, dtype=np.float64), requests.shape[:2])
    rows_of: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        rows_of.setdefault(key, []).append(i)
    found = []
    for key, rows in rows_of.items():
        found += _workload(key, requests[rows], usage[rows], prices[rows], step, samples, rules)
    return found


def _workload(key: Hashable, requests: np.ndarray, usage: np.ndarray, prices: np.ndarray, step: float,
              samples: int, rules: WasteRules) -> list[Finding]:
    """One workload's findings from its pods' rows [m, R, T]."""
    cpu, memory = RESOURCES.index("cpu"), RESOURCES.index("memory")
    pods = np.isfinite(requests[:, cpu]).sum(axis=0)  # [T] pods with a request at each time
    measured = np.isfinite(usage[:, cpu]).any(axis=0) & (pods > 0)  # [T]
    if measured.sum() < rules.coverage * samples:
        return []
    hours = measured.sum() * step / HOUR
    to_month = MONTH_HOURS / hours
    cost = costs_per_hour(requests, usage, prices)  # [m, R, T]
    found = []
    total_cpu = np.nansum(usage[:, cpu], axis=0)[measured]
    cpu_p = float(np.quantile(total_cpu, rules.usage_quantile))
    if cpu_p <= rules.idle_cores:
        saving = float(cost[..., measured].sum() * step / HOUR * to_month)
        found.append(Finding(FindingKind.IDLE, key, saving, (
            f"p{quantile_label(rules.usage_quantile)} cpu {cpu_p * 1000:.1f}m over {hours:.0f} h, at or under "
            f"{rules.idle_cores * 1000:g}m: idle; it costs {saving:.2f} a month")))
    else:
        found += _rightsizing(key, requests, usage, prices, cost, pods, measured, step, to_month, rules, (cpu, memory))
    anomaly = _anomaly(key, cost.sum(axis=(0, 1)), measured, step, rules)
    return found + ([anomaly] if anomaly else [])


def _rightsizing(key, requests, usage, prices, cost, pods, measured, step, to_month, rules,
                 resources) -> list[Finding]:
    latest = int(np.flatnonzero(measured)[-1])
    recommended, parts, held = {}, [], requests.copy()
    for r in resources:
        per_pod_request = float(np.nansum(requests[:, r, latest]) / pods[latest])
        per_pod_usage = np.nansum(usage[:, r], axis=0)[measured] / pods[measured]
        p = float(np.quantile(per_pod_usage, rules.usage_quantile))
        if per_pod_request > 0 and p < rules.rightsizing_ratio * per_pod_request:
            recommended[RESOURCES[r]] = p * rules.margin
            held[:, r] = np.minimum(requests[:, r], p * rules.margin)  # never raised; unknown stays NaN
            name = RESOURCES[r]
            parts.append(f"{name} p{quantile_label(rules.usage_quantile)} {amount(name, p)} a pod under "
                         f"{rules.rightsizing_ratio:.0%} of its request {amount(name, per_pod_request)}: "
                         f"request {amount(name, p * rules.margin)}")
    if not recommended:
        return []
    week = cost - costs_per_hour(held, usage, prices)  # [m, R, T] what the held requests save
    saving = float(week[..., measured].sum() * step / HOUR * to_month)
    return [Finding(FindingKind.RIGHTSIZING, key, saving, "; ".join(parts) + f": saves {saving:.2f} a month",
                    tuple(recommended.items()))]


def _anomaly(key, hourly: np.ndarray, measured: np.ndarray, step: float, rules: WasteRules) -> Optional[Finding]:
    """The latest whole day's cost against the earlier ones (`hourly` [T]: cost per hour)."""
    per_day = int(round(DAY / step))
    days = len(hourly) // per_day
    if days < rules.min_history_days + 1:
        return None
    cut = len(hourly) - days * per_day
    daily = (hourly[cut:] * step / HOUR).reshape(days, per_day).sum(axis=1)
    complete = measured[cut:].reshape(days, per_day).mean(axis=1) >= rules.coverage
    history = daily[:-1][complete[:-1]]
    if not complete[-1] or len(history) < rules.min_history_days:
        return None
    score = modified_z(history, float(daily[-1]), rules.mad_floor)
    if score <= rules.anomaly_threshold:
        return None
    return Finding(FindingKind.COST_ANOMALY, key, None, (
        f"the last 24 h cost {daily[-1]:.2f}, against a median of {np.median(history):.2f} a day over the "
        f"{len(history)} days before (modified z-score {score:.1f} over {rules.anomaly_threshold:g})"))
