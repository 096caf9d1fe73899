"""Public forecasting API: shapes, ordering, tiers, known answers, batch = single."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quartermaster.predictors import ForecastDefaults, ForecastOptions, forecast, forecast_detailed, forecast_many

STEP = 300.0  # 5-minute samples
DAY = 288


def sine(days: float, amplitude=10.0, level=50.0, noise=0.0, seed=0) -> np.ndarray:
    t = np.arange(int(days * DAY))
    rng = np.random.default_rng(seed)
    return level + amplitude * np.sin(2 * np.pi * t / DAY) + rng.normal(0, noise, t.size)


def test_shape_and_order_of_rows_follow_the_quantiles_asked():
    history = sine(4, noise=2.0)
    out = forecast(history, STEP, 12, (0.9, 0.1, 0.5))
    assert out.shape == (3, 12)
    assert np.all(out[0] >= out[2]) and np.all(out[2] >= out[1])


def test_pure_sine_is_forecast_within_a_tight_error():
    history = sine(5)
    truth = 50 + 10 * np.sin(2 * np.pi * np.arange(history.size, history.size + 24) / DAY)
    result = forecast_detailed(history, STEP, 24, (0.1, 0.5, 0.9))
    assert result.tier == "model"
    assert np.max(np.abs(result.at(0.5) - truth)) < 0.05  # amplitude 10
    # no noise, next to no spread: what there is comes from the analogs, whose neighbours
    # sit a step or two off today's phase on other days
    assert np.max(result.at(0.9) - result.at(0.1)) < 0.15
    assert result.confidence > 0.99


def test_step_change_is_followed_within_six_steps():
    rng = np.random.default_rng(1)
    history = np.r_[np.full(2 * DAY, 100.0), np.full(DAY // 2, 200.0)] + rng.normal(0, 1, 2 * DAY + DAY // 2)
    # the new level has lasted half a day; an older step gets followed too (see below)
    median = forecast(history, STEP, 12, (0.5,))[0]
    assert np.all(np.abs(median - 200.0) < 5.0)
    for steps_since in (6, 12):
        recent = np.r_[np.full(2 * DAY, 100.0), np.full(steps_since, 200.0)] + rng.normal(0, 1, 2 * DAY + steps_since)
        assert abs(forecast(recent, STEP, 1, (0.5,))[0, 0] - 200.0) < 20.0, steps_since


def test_detected_short_cycle_is_used():
    t = np.arange(3 * DAY)
    history = 10 + 5 * (t % 12 < 3)  # a one-hour batch job, 15 minutes on
    result = forecast_detailed(history, STEP, 12, (0.5,))
    expected = 10 + 5 * (np.arange(t.size, t.size + 12) % 12 < 3)
    assert np.max(np.abs(result.values[0] - expected)) < 0.5
    assert "seasonal" in result.model
    # the daily profiles repeat the hourly job too; left out (the ablation benchmark's
    # switch), the detected cycle carries the forecast
    daily = [f"daily seasonal profile ({cycles}{fading})" for cycles in ("last cycle", "median of 3 cycles")
             for fading in ("", ", deviation fading")]
    result = forecast_detailed(history, STEP, 12, (0.5,), options=ForecastOptions(without_models=tuple(daily)))
    assert result.model.startswith("detected-cycle seasonal profile")
    assert np.max(np.abs(result.values[0] - expected)) < 0.5


def test_linear_growth_is_extrapolated():
    history = np.arange(3 * DAY, dtype=float)
    out = forecast(history, STEP, 12, (0.5,))[0]
    np.testing.assert_allclose(out, np.arange(3 * DAY, 3 * DAY + 12), atol=0.5)


def test_coverage_of_the_upper_quantile_is_close_to_nominal_on_noise():
    rng = np.random.default_rng(3)
    hits = []
    for _ in range(40):
        series = 100 + rng.normal(0, 10, 2 * DAY + 12)
        upper = forecast(series[:-12], STEP, 12, (0.9,))[0]
        hits.append(series[-12:] <= upper)
    assert 0.8 <= np.mean(hits) <= 0.97


@pytest.mark.parametrize("length, tier", [(0, "default"), (1, "robust"), (20, "robust"), (400, "model")])
def test_tier_follows_history_length(length, tier):
    result = forecast_detailed(sine(length / DAY, noise=1.0), STEP, 12, (0.5, 0.9),
                               defaults=ForecastDefaults(value=7.0))
    assert result.tier == tier
    assert 0.0 <= result.confidence <= 1.0
    if tier == "default":
        assert np.all(result.values == 7.0) and result.confidence == 0.0
    else:
        assert abs(result.at(0.5)[0] - 50.0) < 15.0


def test_robust_confidence_is_below_model_confidence_for_the_same_signal():
    short = forecast_detailed(sine(0.05, noise=1.0), STEP, 12, (0.5,))
    long = forecast_detailed(sine(3, noise=1.0), STEP, 12, (0.5,))
    assert (short.tier, long.tier) == ("robust", "model")
    assert short.confidence < long.confidence


def test_all_missing_history_uses_defaults():
    result = forecast_detailed(np.full(500, np.nan), STEP, 6, (0.5,), defaults=ForecastDefaults(3.0))
    assert result.tier == "default" and np.all(result.values == 3.0)


def test_constant_and_zero_series_forecast_themselves():
    for value in (0.0, 42.0):
        out = forecast(np.full(3 * DAY, value), STEP, 12, (0.1, 0.5, 0.99))
        np.testing.assert_allclose(out, value)


def test_nonnegative_signal_is_never_forecast_below_zero():
    rng = np.random.default_rng(5)
    history = np.maximum(rng.normal(0.5, 2.0, 3 * DAY), 0)
    assert forecast(history, STEP, 12, (0.01, 0.5)).min() >= 0.0


def test_counter_forecast_continues_from_the_raw_value_after_a_reset():
    counter = np.r_[np.arange(0.0, 600.0), np.arange(0.0, 300.0)]
    out = forecast(counter, STEP, 5, (0.5,))[0]
    np.testing.assert_allclose(out, np.arange(300.0, 305.0), atol=0.5)


def test_batch_gives_the_same_answer_as_one_series_at_a_time():
    batch = np.stack([sine(3, noise=2.0, seed=s) for s in range(3)] + [np.full(3 * DAY, 5.0)])
    many = forecast_many(batch, STEP, 12, (0.5, 0.9))
    assert many.shape == (4, 2, 12)
    for row, series in zip(many, batch):
        # the same up to float32 rounding (the backtest runs in float32)
        np.testing.assert_allclose(row, forecast(series, STEP, 12, (0.5, 0.9)), rtol=1e-6, atol=1e-6)


def test_chunks_forecast_on_several_threads_match_one_series_at_a_time(monkeypatch):
    from quartermaster.predictors import engine
    monkeypatch.setattr(engine, "CHUNK_ROWS", 2)
    monkeypatch.setattr(engine, "WORKERS", 3)
    batch = np.stack([sine(3, noise=1.0 + s, seed=s) for s in range(7)])
    many = forecast_many(batch, STEP, 12, (0.1, 0.5, 0.9))
    for row, series in zip(many, batch):
        np.testing.assert_allclose(row, forecast(series, STEP, 12, (0.1, 0.5, 0.9)), rtol=1e-6, atol=1e-6)


def test_a_float32_batch_is_forecast_as_its_float64_widening(monkeypatch):
    # the engine widens a float32 batch a chunk at a time (the control cycle's series)
    from quartermaster.predictors import engine, forecast_many_detailed
    monkeypatch.setattr(engine, "CHUNK_ROWS", 2)
    batch = np.stack([sine(3, noise=1.0 + s, seed=s) for s in range(5)]).astype(np.float32)
    batch[1, 100:200], batch[3] = np.nan, np.nan
    narrow, wide = (forecast_many_detailed(b, STEP, 12, (0.5, 0.9)) for b in (batch, batch.astype(np.float64)))
    np.testing.assert_array_equal(narrow.values, wide.values)
    np.testing.assert_array_equal(narrow.confidence, wide.confidence)
    assert (narrow.tier, narrow.model) == (wide.tier, wide.model)


@pytest.mark.parametrize("kwargs", [dict(step_seconds=0), dict(step_seconds=np.nan), dict(horizon=0),
                                    dict(horizon=2.5), dict(quantiles=(1.5,)), dict(quantiles=())])
def test_invalid_arguments_raise(kwargs):
    args = dict(history=np.ones(10), step_seconds=STEP, horizon=3, quantiles=(0.5,)) | kwargs
    with pytest.raises(ValueError):
        forecast(**args)


@settings(max_examples=40, deadline=None)
@given(history=arrays(np.float64, st.integers(0, 700),
                      elements=st.one_of(st.floats(-1e3, 1e6), st.just(np.nan))),
       horizon=st.integers(1, 30),
       quantiles=st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_any_series_gives_finite_non_decreasing_quantiles(history, horizon, quantiles):
    out = forecast(history, STEP, horizon, tuple(quantiles))
    assert out.shape == (len(quantiles), horizon)
    assert np.all(np.isfinite(out))
    ordered = out[np.argsort(quantiles, kind="stable")]
    assert np.all(np.diff(ordered, axis=0) >= 0)


def test_batch_with_details_matches_one_detailed_forecast_per_series():
    from quartermaster.predictors import forecast_many_detailed
    # a model-tier sine, a model-tier constant, a too-short series (robust), one with no sample (default)
    batch = np.stack([sine(3, noise=2.0), np.full(3 * DAY, 5.0),
                      np.r_[np.full(3 * DAY - 20, np.nan), sine(20 / DAY, noise=1.0)], np.full(3 * DAY, np.nan)])
    quantiles = (0.9, 0.5)
    defaults = ForecastDefaults(value=4.0)
    many = forecast_many_detailed(batch, STEP, 12, quantiles, defaults=defaults)
    assert many.values.shape == (4, 2, 12) and many.confidence.shape == (4,)
    assert many.tier == ["model", "model", "robust", "default"]
    for i, series in enumerate(batch):
        one = forecast_detailed(series, STEP, 12, quantiles, defaults=defaults)
        assert (many.tier[i], many.model[i]) == (one.tier, one.model)
        # the same up to float32 rounding (the backtest runs in float32)
        np.testing.assert_allclose(many.values[i], one.values, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(many.confidence[i], one.confidence, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(many.at(0.5)[i], many.values[i, 1])
    assert np.all(many.values[3] == 4.0)
