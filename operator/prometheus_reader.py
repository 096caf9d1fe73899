"""Range queries against Prometheus (prometheus-api-client), returned as numpy grids.

One PromQL query over a time range gives every series it matches; the reader splits the
range so that no request exceeds Prometheus's points-per-series limit nor a bound on the
samples in one JSON answer (which is parsed into Python objects: millions of samples at
once would not fit the operator's memory). Every failure comes out as one exception,
`MetricsUnavailable`, whose reason the operator shows in a `MetricsAvailable` condition.
"""
from __future__ import annotations

import json
import math
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from quartermaster.operator.settings import MetricsSettings


IN_FLIGHT = 2  # range requests Prometheus works on at once during one pull


class MetricsUnavailable(Exception):
    """Prometheus could not answer; `reason` is a condition reason (CamelCase)."""

    def __init__(self, reason: str, message: str, url: str) -> None:
        super().__init__(f"{message} (Prometheus at {url})")
        self.reason = reason
        self.url = url


@dataclass(frozen=True)
class RangeResult:
    """Series on a regular grid: values[i, k] is series i at timestamps[k], NaN where absent."""

    labels: list[dict[str, str]]
    timestamps: np.ndarray  # [T] unix seconds
    values: np.ndarray  # [n, T] float32


class PrometheusReader:
    def __init__(self, settings: MetricsSettings) -> None:
        if not settings.prometheus_url:
            raise ValueError("no Prometheus URL configured")
        self.settings = settings
        self.url = settings.prometheus_url.rstrip("/")
        # No retries here: the cycle retries on its next run and says so in the meantime. (A
        # read that is not retried at all raises as a timeout, not as "retries exhausted".)
        self._client = PrometheusConnect(self.url, disable_ssl=False, retry=Retry(total=0, read=False),
                                         timeout=settings.timeout_seconds)

    def count(self, promql: str, at: float) -> int:
        """How many series `promql` gives at `at` (to size the range requests)."""
        result = self._call(self._client.custom_query, query=f"count({promql})",
                            params={"time": f"{at:.3f}"})
        return int(float(result[0]["value"][1])) if result else 0

    def range(self, promql: str, start: float, end: float, step: int, expected_series: int = 1) -> RangeResult:
        """`promql` at start, start + step, ..., end (aligned by the caller), in as many
        requests as the limits ask for, each fetched while the one before is converted.
        Series that appear in only some requests are NaN in the others."""
        points = int(round((end - start) / step)) + 1
        per_request = max(1, min(self.settings.max_points_per_series,
                                 self.settings.max_samples_per_query // max(expected_series, 1)))
        timestamps = start + step * np.arange(points, dtype=np.float64)
        firsts = range(0, points, per_request)

        def fetch(first: int) -> list[dict]:
            last = min(first + per_request, points) - 1
            return self._call(
                self._client.custom_query_range, query=promql,
                start_time=datetime.fromtimestamp(timestamps[first], timezone.utc),
                end_time=datetime.fromtimestamp(timestamps[last], timezone.utc), step=str(step))

        grid = _Grid(points, max(expected_series, 1))
        # Evaluating a query costs Prometheus about twice what converting its answer costs
        # here, and one query runs on one core: keep IN_FLIGHT requests going while this
        # thread converts the answers in order (at most IN_FLIGHT + 1 answers held at once).
        with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="prometheus") as pool:
            pending = deque(pool.submit(fetch, first) for first in firsts[:IN_FLIGHT])
            for index, first in enumerate(firsts):
                series = pending.popleft().result()
                if index + IN_FLIGHT < len(firsts):
                    pending.append(pool.submit(fetch, firsts[index + IN_FLIGHT]))
                grid.add(series, (timestamps[first], step), first)
        return RangeResult(grid.labels, timestamps, grid.values[:len(grid.labels)])

    def _call(self, method, **kwargs):
        try:
            return method(**kwargs)
        except requests.Timeout:
            raise MetricsUnavailable(
                "PrometheusTimeout", f"no answer within {self.settings.timeout_seconds:g}s", self.url) from None
        except requests.ConnectionError as error:
            cause = re.search(r"\[Errno -?\d+\][^'\")]*", str(error))
            raise MetricsUnavailable("PrometheusUnreachable",
                                     f"cannot connect: {cause.group(0) if cause else _short(error)}", self.url) from None
        except PrometheusApiClientException as error:
            raise MetricsUnavailable("PrometheusQueryError", _api_error(str(error)), self.url) from None
        except (requests.RequestException, ValueError, KeyError, TypeError) as error:
            raise MetricsUnavailable("PrometheusBadResponse", _short(error), self.url) from None


def _short(error: Exception, limit: int = 300) -> str:
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "…"


def _api_error(text: str) -> str:
    """Prometheus's own error message from the client's "HTTP Status Code 400 (b'{...}')"."""
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        try:
            body = json.loads(text[start:end + 1].encode().decode("unicode_escape"))
            return f"{body.get('errorType', 'error')}: {body.get('error', '')}"[:300]
        except ValueError:
            pass
    return _short(text)


def aligned(timestamp: float, step: int) -> float:
    """The last grid time at or before `timestamp` (grids are multiples of the step)."""
    return math.floor(timestamp / step) * step


class _Grid:
    """Rows of series (by their labels) over a range's points, filled answer by answer."""

    def __init__(self, points: int, expected_series: int) -> None:
        self.labels: list[dict[str, str]] = []
        self._rows: dict[tuple, int] = {}
        self.values = np.full((expected_series, points), np.nan, dtype=np.float32)

    def add(self, series: list[dict], origin: tuple[float, int], offset: int) -> None:
        """One answer's series; `origin` is (its first grid time, the step), `offset` that
        time's column in the grid."""
        if not series:
            return
        rows = [self._row(item["metric"]) for item in series]
        lengths = [len(item["values"]) for item in series]
        # Prometheus sends [time, "value"] pairs: flat conversions over the whole answer
        # cost a fraction of one per pair or per series.
        times = np.fromiter((p[0] for item in series for p in item["values"]), np.float64, sum(lengths))
        samples = np.array([p[1] for item in series for p in item["values"]], dtype=np.float64)
        first_time, step = origin
        columns = offset + np.rint((times - first_time) / step).astype(np.int64)
        inside = (columns >= 0) & (columns < self.values.shape[1])
        self.values[np.repeat(rows, lengths)[inside], columns[inside]] = samples[inside]

    def _row(self, metric: dict[str, str]) -> int:
        key = tuple(sorted(metric.items()))
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self.labels)
            self.labels.append(dict(metric))
            if row >= self.values.shape[0]:
                grown = np.full((2 * self.values.shape[0], self.values.shape[1]), np.nan, dtype=np.float32)
                grown[:row] = self.values[:row]
                self.values = grown
        return row
