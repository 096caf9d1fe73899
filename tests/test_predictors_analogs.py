"""Analog quantile forecasts: what followed the past states most like now."""
from dataclasses import replace

import numpy as np

from quartermaster.predictors import ForecastOptions, forecast_detailed
from quartermaster.predictors.analogs import analog_quantiles

QUANTILES = np.array([0.1, 0.5, 0.9])


def bursts(length: int, seed: int, now_into_burst: int) -> np.ndarray:
    """An idle series (about 1) with seven-step bursts (about 80) at irregular gaps, the
    last burst begun ``now_into_burst`` steps before the end."""
    rng = np.random.default_rng(seed)
    values = 1.0 + 0.05 * rng.normal(size=length)
    start = 20
    while start < length - 40:
        values[start:start + 7] = 80.0 + rng.normal(size=7)
        start += int(rng.integers(30, 70))  # no period to find
    values[length - now_into_burst:] = 80.0 + rng.normal(size=now_into_burst)
    return values


def test_a_burst_in_progress_is_forecast_to_end_when_past_bursts_ended():
    # two steps into a burst: past bursts say five more steps high, then idle
    values = bursts(2000, seed=1, now_into_burst=2)[None, :]
    forecast = analog_quantiles(values, 12, QUANTILES, np.zeros(1, dtype=np.intp))[0]
    median = forecast[1]
    assert np.all(np.abs(median[:5] - 80.0) < 3.0)
    assert np.all(np.abs(median[6:] - 1.0) < 3.0)


def test_phase_of_a_seasonal_period_tells_apart_states_that_look_alike():
    # 10 overnight and in the evening, 30 from 08:00 to 16:00; it is 07:00 now, so the same
    # flat 10 as any evening, but the working day starts in an hour
    period = 288
    t = np.arange(6 * period + 7 * 12)
    rng = np.random.default_rng(2)
    hour = (t % period) / 12
    values = (np.where((hour >= 8) & (hour < 16), 30.0, 10.0) + rng.normal(0, 0.5, t.size))[None, :]
    coming = np.where(np.arange(1, 25) > 12, 30.0, 10.0)
    with_phase = analog_quantiles(values, 24, QUANTILES, np.array([period]))[0, 1]
    without = analog_quantiles(values, 24, QUANTILES, np.array([0]))[0, 1]
    # (a few steps of phase cost little, so the change may come a few steps off)
    away = np.r_[0:6, 18:24]
    assert np.max(np.abs(with_phase[away] - coming[away])) < 2.0
    # without the phase, most flat stretches of 10 are evenings and nights that stay flat
    assert np.max(np.abs(without[18:] - 10.0)) < 2.0


def test_rows_are_forecast_independently_and_quantiles_are_ordered():
    rng = np.random.default_rng(3)
    values = np.cumsum(rng.normal(size=(5, 600)), axis=1).astype(np.float32)
    period = np.array([0, 12, 0, 48, 12])
    together = analog_quantiles(values, 6, QUANTILES, period)
    assert together.shape == (5, 3, 6)
    assert np.all(np.diff(together, axis=1) >= 0)
    for row in range(5):
        alone = analog_quantiles(values[row:row + 1], 6, QUANTILES, period[row:row + 1])
        np.testing.assert_allclose(alone[0], together[row], rtol=1e-6, atol=1e-6)


def test_constant_series_gives_its_value_and_short_library_uses_what_there_is():
    flat = np.full((1, 100), 7.0)
    np.testing.assert_allclose(analog_quantiles(flat, 12, QUANTILES, np.zeros(1, dtype=np.intp)), 7.0)
    short = np.arange(20.0)[None, :]  # a library of 8 points, fewer than the neighbours wanted
    forecast = analog_quantiles(short, 12, QUANTILES, np.zeros(1, dtype=np.intp))
    assert np.all(np.isfinite(forecast))
    # each neighbour's outcome is its own rise, moved to today's level: still a rise
    assert np.all(forecast[0, 1] > short[0, -1])


def test_analogs_know_a_burst_in_progress_lasts_five_more_steps_then_ends():
    # two steps into a seven-step burst: the whole history says five more high steps, the
    # backtest's day of mostly idle origins cannot
    history = bursts(2000, seed=1, now_into_burst=2)

    def right(options: ForecastOptions) -> bool:
        # the median is half the analogs' (80, then 1) and half the calibrated one's (1)
        median = forecast_detailed(history, 300.0, 12, (0.5, 0.9), options=options).at(0.5)
        return bool(np.all(median[:5] > 20.0) and np.all(median[6:] < 5.0))

    assert right(ForecastOptions())
    assert not right(replace(ForecastOptions(), analog_weight=0.0))
