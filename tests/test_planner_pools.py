"""A pool's decisions: strategy parameters, pressure and capacity projection, on known answers."""
import math

import numpy as np
import pytest

from quartermaster.planner.pools import capacity_projection, pressure, strategy_parameters

DAY = 86400.0
STEP = 300.0  # 5-minute samples
MIDNIGHT = 1_700_006_400.0  # 2023-11-15 00:00 UTC
THRESHOLDS = dict(warning=0.7, critical=0.85, emergency=0.95)


def grid(days: float, start: float = MIDNIGHT) -> np.ndarray:
    return start + STEP * np.arange(int(days * DAY / STEP))


def elapsed_days(times: np.ndarray) -> np.ndarray:
    return (times - times[0]) / DAY


# ---- strategies ------------------------------------------------------------------

@pytest.mark.parametrize("strategy, expected", [
    ("Conservative", (0.95, 3600, 0.20, 1800)),
    ("Balanced", (0.90, 1800, 0.10, 600)),
    ("Aggressive", (0.75, 900, 0.05, 120)),
    ("Adaptive", (0.90, 1800, 0.10, 600)),  # coverage not yet measured
])
def test_strategies_map_to_their_table_row(strategy, expected):
    p = strategy_parameters(strategy)
    assert (p.quantile, p.horizon_seconds, p.buffer, p.scale_down_delay_seconds) == pytest.approx(expected)


def test_adaptive_buffer_rises_as_coverage_falls_within_its_bounds():
    buffers = [strategy_parameters("Adaptive", coverage).buffer for coverage in (0.97, 0.90, 0.85, 0.80, 0.5)]
    # at or above the planned 0.90 the floor; then two points per point missed; then the ceiling
    assert buffers == pytest.approx([0.05, 0.05, 0.15, 0.25, 0.30])
    assert strategy_parameters("Adaptive", math.nan).buffer == pytest.approx(0.10)
    assert strategy_parameters("Balanced", 0.5).buffer == pytest.approx(0.10)  # only Adaptive adapts


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="'Greedy'"):
        strategy_parameters("Greedy")


# ---- pressure --------------------------------------------------------------------

def test_forecast_sets_pressure_only_when_it_exceeds_usage_and_requests_with_its_buffer():
    # 7 x 1.1 = 7.7 > used 7.5 > requested 6: the forecast with its buffer sets the demand
    raised = pressure(10, 6, 7.5, 7.0, 0.10, **THRESHOLDS)
    assert (raised.basis, raised.level) == ("forecast", "Warning")
    assert raised.demand == pytest.approx(7.7) and raised.fraction == pytest.approx(0.77)
    # 7 x 1.05 = 7.35 < used 7.5: usage does, though the bare forecast alone would not decide it
    assert pressure(10, 6, 7.5, 7.0, 0.05, **THRESHOLDS).basis == "used"
    # a tie keeps the earlier figure
    assert pressure(10, 8, 8, 8 / 1.1, 0.10, **THRESHOLDS).basis == "requested"


def test_missing_usage_and_forecast_leave_requests_to_set_pressure():
    for used, forecast in ((None, None), (math.nan, math.nan)):
        decision = pressure(10, 9, used, forecast, 0.1, **THRESHOLDS)
        assert (decision.basis, decision.level, decision.demand) == ("requested", "Critical", 9.0)


@pytest.mark.parametrize("demand, level", [(6.99, "Normal"), (7.0, "Warning"), (8.5, "Critical"),
                                           (9.5, "Emergency"), (12.0, "Emergency")])
def test_levels_start_at_their_thresholds(demand, level):
    assert pressure(10, demand, None, None, 0.1, **THRESHOLDS).level == level


def test_requests_are_required():
    with pytest.raises(ValueError, match="requested"):
        pressure(10, math.nan, 1, 1, 0.1, **THRESHOLDS)


def test_a_resource_without_capacity_has_no_pressure():
    assert pressure(0, 3, 1, 1, 0.1, **THRESHOLDS) is None
    assert pressure(math.nan, 3, 1, 1, 0.1, **THRESHOLDS) is None


# ---- capacity projection -----------------------------------------------------------

def test_demand_growing_a_core_a_day_to_ten_runs_out_of_twenty_in_ten_days():
    times = grid(14)
    demand = 10.0 - (elapsed_days(times)[-1] - elapsed_days(times))  # ends at 10, 1 core/day
    out = capacity_projection(times, demand, 20.0, times[-1])
    assert out.trend_per_day == pytest.approx(1.0)
    assert out.days_left == pytest.approx(10.0)
    assert out.exhausts_at == pytest.approx(times[-1] + 10 * DAY)


def test_flat_or_falling_demand_never_runs_out_on_its_trend():
    times = grid(14)
    for demand in (np.full(times.size, 5.0), 12.0 - elapsed_days(times) * 0.5):
        out = capacity_projection(times, demand, 20.0, times[-1])
        assert out.trend_per_day <= 0.0
        assert out.exhausts_at is None and out.days_left is None


def test_trend_follows_daily_peaks_not_the_mean():
    # every afternoon peaks a core higher than the day before; nights stay at 5, so the mean
    # (and a line through all samples) grows only half as fast
    times = grid(14)
    days = elapsed_days(times)
    demand = 5.0 + (1.0 + days) * 0.5 * (1.0 - np.cos(2 * np.pi * days))
    out = capacity_projection(times, demand, 30.0, times[-1])
    assert out.trend_per_day == pytest.approx(1.0, abs=0.01)
    # the last peak, 5 + 14.5 at noon, reaches 30 in 10.5 days: 10 days from midnight
    assert out.days_left == pytest.approx(10.0, abs=0.05)


def test_one_extraordinary_day_does_not_tilt_the_trend():
    times = grid(14)
    demand = 10.0 - (elapsed_days(times)[-1] - elapsed_days(times))
    demand[3 * 288 + 100] = 100.0  # an incident on day 3
    out = capacity_projection(times, demand, 20.0, times[-1])
    assert out.trend_per_day == pytest.approx(1.0, abs=0.01)
    assert out.days_left == pytest.approx(10.0, abs=0.1)


def test_a_day_seen_too_little_gives_no_peak():
    # two whole days of growing afternoon peaks and the first two hours (a night) of a third:
    # the third is no day, so the line goes through the samples, and still rises
    times = grid(2 + 2 / 24)
    days = elapsed_days(times)
    demand = 5.0 + (1.0 + days) * 0.5 * (1.0 - np.cos(2 * np.pi * days))
    out = capacity_projection(times, demand, 30.0, times[-1])
    assert out.trend_per_day > 0.2
    assert out.days_left is not None


def test_gaps_do_not_move_the_trend():
    times = grid(14)
    demand = 10.0 - (elapsed_days(times)[-1] - elapsed_days(times))
    demand[::3] = np.nan
    demand[1000:1100] = np.nan
    out = capacity_projection(times, demand, 20.0, times[-1])
    assert out.trend_per_day == pytest.approx(1.0)
    assert out.days_left == pytest.approx(10.0, abs=0.01)


def test_short_history_falls_back_to_a_line_through_its_samples():
    times = grid(1.5)
    demand = 8.0 + 2.0 * elapsed_days(times)  # 2 cores a day
    out = capacity_projection(times, demand, 20.0, times[-1])
    assert out.trend_per_day == pytest.approx(2.0)
    assert out.days_left == pytest.approx((20.0 - demand[-1]) / 2.0)


def test_demand_at_capacity_has_no_days_left():
    times = grid(7)
    out = capacity_projection(times, np.full(times.size, 20.0), 20.0, times[-1])
    assert (out.days_left, out.exhausts_at) == (0.0, times[-1])
    assert all(s.days_left == 0.0 for s in out.scenarios)


def test_a_crossing_beyond_the_horizon_is_not_reported():
    times = grid(14)
    demand = 10.0 - 0.01 * (elapsed_days(times)[-1] - elapsed_days(times))  # 1,000 days to go
    out = capacity_projection(times, demand, 20.0, times[-1], max_days=730.0)
    assert out.trend_per_day == pytest.approx(0.01)
    assert out.days_left is None and out.exhausts_at is None
    assert capacity_projection(times, demand, 20.0, times[-1], max_days=1500.0).days_left == pytest.approx(1000.0)


def test_growth_scenarios_compound_monthly_from_the_recent_peak():
    times = grid(7)
    out = capacity_projection(times, np.full(times.size, 10.0), 20.0, times[-1],
                              growth_per_month=(0.10, 0.25, 0.0001))
    ten, quarter, slow = out.scenarios
    # doubling: 30.44 x ln 2 / ln(1 + g) days
    assert ten.growth_per_month == 0.10 and ten.days_left == pytest.approx(30.44 * math.log(2) / math.log(1.10))
    assert quarter.days_left == pytest.approx(30.44 * math.log(2) / math.log(1.25))
    assert quarter.exhausts_at == pytest.approx(times[-1] + quarter.days_left * DAY)
    assert slow.days_left is None and slow.exhausts_at is None  # centuries away


def test_no_capacity_or_no_sample_gives_no_dates():
    times = grid(7)
    growing = 10.0 + elapsed_days(times)
    for out in (capacity_projection(times, growing, 0.0, times[-1]),
                capacity_projection(times, np.full(times.size, np.nan), 20.0, times[-1])):
        assert out.exhausts_at is None and out.days_left is None
        assert len(out.scenarios) == 3
        assert all(s.exhausts_at is None and s.days_left is None for s in out.scenarios)
    assert capacity_projection(times, np.full(times.size, np.nan), 20.0, times[-1]).trend_per_day == 0.0


def test_malformed_series_raise():
    with pytest.raises(ValueError, match="demand"):
        capacity_projection(grid(1), np.ones(3), 10.0, MIDNIGHT)
    with pytest.raises(ValueError, match="timestamps"):
        capacity_projection(grid(1)[::-1], np.ones(288), 10.0, MIDNIGHT)
