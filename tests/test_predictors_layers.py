"""Each layer of the model tier kept by the ablation (predictors/README.md; the analogs in
test_predictors_analogs) against a case built so that only it gets the answer right: every
test also runs the case with that layer switched off and checks that the answer is then missed."""
from dataclasses import replace

import numpy as np
from scipy.stats import norm, spearmanr

from quartermaster.predictors import ForecastOptions, forecast_detailed, forecast_many_detailed
from quartermaster.predictors.calibration import quantile_forecasts
from quartermaster.predictors.selection import combine

STEP = 300.0
DAY = 288
PRODUCT = ForecastOptions()


def test_last_value_anchor_carries_the_upper_quantile_of_a_random_walk():
    # a random walk forecast by a stale level: only an anchor on the last value puts the 0.9
    # quantile at the walk's own spread around where it is now
    rng = np.random.default_rng(5)
    n_origins, horizon = 400, 3
    walk = np.cumsum(rng.normal(0, 1, n_origins + horizon))
    origins = np.arange(n_origins)
    last = walk[origins][None, :]
    point = np.zeros((1, n_origins, horizon))  # stale
    actuals = walk[origins[:-1, None] + 1 + np.arange(horizon)][None]
    expected = last[0, -1] + norm.ppf(0.9) * np.sqrt(np.arange(1, horizon + 1))

    def upper(shares):
        return quantile_forecasts(point, last, actuals, np.array([0.5, 0.9]), shares)[0][0, 1]

    assert np.all(np.abs(upper(PRODUCT.anchor_shares) - expected) < 0.35)
    assert not np.all(np.abs(upper((0.0,)) - expected) < 0.35)


def test_ensemble_averages_two_near_tied_models_whose_errors_cancel():
    # one model 1.0 too high, the other 1.05 too low: the best alone is 1.0 off, their
    # loss-weighted average a few hundredths
    actuals = np.zeros((1, 20, 4))
    truth_at_origins = np.zeros((1, 21, 4))
    predictions = [truth_at_origins + 1.0, truth_at_origins - 1.05]
    eligible = np.ones((1, 2), dtype=bool)
    combined = combine(predictions, actuals, eligible, PRODUCT.ensemble_tolerance).forecasts
    alone = combine(predictions, actuals, eligible, 1.0).forecasts
    assert np.max(np.abs(combined)) < 0.05
    assert np.max(np.abs(alone)) >= 1.0


def ar_around_a_daily_profile(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A daily sine plus a deviation that decays by 0.8 a step (AR(1)), just lifted by a run
    of shocks; and the expected next 12 values (the lift fading by 0.8 ** h)."""
    rng = np.random.default_rng(seed)
    length = 6 * DAY
    shocks = rng.normal(0, 3, length)
    shocks[-6:] = 8.0
    deviation = np.zeros(length)
    for t in range(1, length):
        deviation[t] = 0.8 * deviation[t - 1] + shocks[t]
    profile = 50 + 20 * np.sin(2 * np.pi * np.arange(length + 12) / DAY)
    return profile[:length] + deviation, profile[length:] + deviation[-1] * 0.8 ** np.arange(1, 13)


def test_fading_seasonal_deviation_follows_a_lift_that_decays():
    cases = [ar_around_a_daily_profile(seed) for seed in range(4)]

    def error(options: ForecastOptions) -> float:
        return float(np.mean([np.abs(forecast_detailed(history, STEP, 12, (0.5,), options=options).values[0]
                                     - expected).mean() for history, expected in cases]))

    assert error(PRODUCT) < 11.0
    assert error(replace(PRODUCT, seasonal_dampings=(1.0,))) >= 11.0


def test_higher_confidence_goes_with_lower_error_on_series_not_seen_before():
    # daily sines with more and more noise, and the same with the noise doubling over the
    # last few hours (the band breaks): forecast, then score on what followed
    rng = np.random.default_rng(11)
    t = np.arange(4 * DAY + 12)
    rows = []
    for noise in np.linspace(0.5, 12.0, 8):
        for late_burst in (1.0, 3.0):
            scale = np.where(t >= 4 * DAY - 48, late_burst, 1.0) * noise
            rows.append(50 + 20 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 1, t.size) * scale)
    batch = np.stack(rows)
    result = forecast_many_detailed(batch[:, :-12], STEP, 12, (0.5, 0.9))
    error = np.abs(result.at(0.5) - batch[:, -12:]).mean(axis=1)
    assert spearmanr(result.confidence, error).statistic < -0.7
    # a band that just broke costs confidence beyond what the median's error says
    steady, broken = result.confidence[0::2], result.confidence[1::2]
    assert np.all(broken < steady)
