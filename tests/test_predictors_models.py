"""Building blocks: period detection, smoothing, the decaying histogram, calibration, models."""
import numpy as np
import pytest

from quartermaster.predictors.calibration import quantile_forecasts
from quartermaster.predictors.histogram import decaying_percentile
from quartermaster.predictors.models import LinearTrend, SeasonalProfile
from quartermaster.predictors.seasonality import detect_period, period_steps, seasonality_strengths
from quartermaster.predictors.smoothing import exponential_level, exponential_level_at

STEP = 300.0


def test_period_detection_finds_each_rows_cycle_and_rejects_noise():
    rng = np.random.default_rng(0)
    t = np.arange(4 * 288)
    rows = np.stack([np.sin(2 * np.pi * t / 12), np.sin(2 * np.pi * t / 288) + 0.1 * rng.normal(size=t.size),
                     rng.normal(size=t.size)])
    candidates = period_steps((1800.0, 3600.0, 86400.0), STEP, t.size)
    assert candidates == [6, 12, 288]
    period, found = detect_period(seasonality_strengths(rows, candidates), candidates)
    assert period[:2].tolist() == [12, 288]
    assert found.tolist() == [True, True, False]


def test_period_needs_two_cycles_of_history():
    assert period_steps((86400.0,), STEP, 2 * 288 - 1) == []
    assert period_steps((86400.0,), STEP, 2 * 288) == [288]


def test_daily_profile_survives_a_missing_day():
    t = np.arange(5 * 288)
    values = 50 + 20 * np.sin(2 * np.pi * t / 288)
    values[3 * 288:4 * 288] = 50.0  # a day with a flat, interpolated gap
    origins = np.array([values.size])
    (out,) = SeasonalProfile(288, 3, 0.3).predict(values[None, :], origins, 12)
    out = out[0, 0]
    truth = 50 + 20 * np.sin(2 * np.pi * np.arange(values.size, values.size + 12) / 288)
    assert np.max(np.abs(out - truth)) < 0.5


def test_exponential_level_tracks_a_line():
    line = np.arange(500.0)[None, :]
    assert exponential_level(line, 1.0)[0, -1] == 499.0
    assert 499 - 1 / 0.2 - 1 < exponential_level(line, 0.2)[0, -1] < 499  # lags by (1 - a) / a


@pytest.mark.parametrize("length", [50, 64, 333, 2016])
def test_exponential_level_is_the_recurrence_step_by_step(length):
    # long series are smoothed in blocks (a matrix product, then a carry between blocks);
    # every step must still be the textbook recurrence from the first value
    values = np.random.default_rng(length).normal(40.0, 5.0, (3, length))
    expected = np.empty_like(values)
    level = values[:, 0]
    for t in range(length):
        level = 0.1 * values[:, t] + 0.9 * level
        expected[:, t] = level
    np.testing.assert_allclose(exponential_level(values, 0.1), expected, rtol=1e-12)
    np.testing.assert_allclose(exponential_level(values.astype(np.float32), np.float32(0.1)), expected, rtol=1e-5)


def test_smoothing_at_a_few_columns_is_the_full_filter_there():
    values = np.random.default_rng(3).normal(0.0, 3.0, (4, 400)).astype(np.float32)
    at = np.array([0, 7, 150, 399])
    np.testing.assert_allclose(exponential_level_at(values, 0.2, at), exponential_level(values, 0.2)[:, at],
                               atol=1e-5)


def test_linear_trend_is_the_least_squares_line_through_the_last_day_before_each_origin():
    values = np.random.default_rng(4).normal(0.0, 1.0, (2, 700)) + np.linspace(0, 30, 700)
    origins = np.array([100, 400, 700])  # the first with less than a day behind it
    out = LinearTrend(STEP).forecast(values.astype(np.float32), origins, 3)
    for row in range(2):
        for column, origin in enumerate(origins):
            t = np.arange(max(origin - 288, 0), origin)
            slope = np.polyfit(t, values[row, t], 1)[0]
            np.testing.assert_allclose(out[row, column], values[row, origin - 1] + slope * np.arange(1, 4),
                                       rtol=1e-4, atol=1e-4)


def test_linear_trend_carries_a_line_on():
    line = np.arange(400.0)[None, :]
    origins = np.array([400])
    linear = LinearTrend(STEP).forecast(line, origins, 20)[0, 0]
    np.testing.assert_allclose(linear, np.arange(400.0, 420.0))


def test_seasonal_deviation_is_held_or_fades_by_its_damping():
    # a daily sine, lifted by 10 over the last few hours: the held variant keeps the lift,
    # the damped ones let it fade by damping ** h
    t = np.arange(4 * 288)
    values = 50 + 20 * np.sin(2 * np.pi * t / 288)
    values[-48:] += 10.0
    model = SeasonalProfile(288, 1, 1.0, dampings=(1.0, 0.5))
    held, faded = model.predict(values[None, :], np.array([values.size]), 6)
    profile = 50 + 20 * np.sin(2 * np.pi * np.arange(values.size, values.size + 6) / 288)
    np.testing.assert_allclose(held[0, 0], profile + 10.0, atol=1e-9)
    np.testing.assert_allclose(faded[0, 0], profile + 10.0 * 0.5 ** np.arange(1, 7), atol=1e-9)
    assert model.descriptions == ("288-step seasonal profile (last cycle)",
                                  "288-step seasonal profile (last cycle, deviation fading)")


def test_decaying_percentile_follows_a_new_regime_after_its_half_life():
    values = np.r_[np.full(1000, 10.0), np.full(300, 100.0)][None, :]
    origins = np.array([1000, 1010, 1300])
    median = decaying_percentile(values, origins, half_life=100, percentile=0.5)[0]
    assert median[0] == 10.0 and median[1] == 10.0  # ten steps in, the old regime still dominates
    assert median[2] == 100.0
    peak = decaying_percentile(values, np.array([1010]), half_life=100, percentile=0.99)[0, 0]
    assert peak == 100.0  # the upper percentile sees the new peak at once


def test_conformal_offsets_recover_a_known_distribution():
    rng = np.random.default_rng(2)
    residuals = rng.normal(0, 1, (1, 2000, 3))
    # with the point forecast and the last value both 0, every anchor is 0 and only the
    # conformal offsets remain
    q = quantile_forecasts(np.zeros((1, 2001, 3)), np.zeros((1, 2001)), residuals, np.array([0.1, 0.5, 0.9]))[0][0]
    np.testing.assert_allclose(q[:, 1], [-1.2816, 0.0, 1.2816], atol=0.1)
