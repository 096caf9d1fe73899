"""placeholder"""
import numpy as np
from .engine import forecast_batch
from .hygiene import as_batch, as_series, clean


def forecast_many(histories, step_seconds, horizon, quantiles):
    q = np.asarray(quantiles, dtype=float)
    order = np.argsort(q)
    res = forecast_batch(clean(as_batch(histories)), float(step_seconds), int(horizon), q[order], 0.0)
    out = np.empty_like(res.values)
    out[:, order] = res.values
    return out


def forecast(history, step_seconds, horizon, quantiles):
    return forecast_many(as_series(history)[None, :], step_seconds, horizon, quantiles)[0]
