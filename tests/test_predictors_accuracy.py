"""Live accuracy tracking."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quartermaster.predictors import AccuracyState, update_accuracy


def feed(values, medians, uppers, half_life=1e9):
    state = AccuracyState.empty(1)
    for v, m, u in zip(values, medians, uppers):
        state = update_accuracy(state, [v], [m], [u], half_life=half_life)
    return state


def test_perfect_forecasts_score_zero_error_full_confidence():
    values = np.array([1.0, 3.0, 2.0, 5.0])
    state = feed(values, values, values + 1)
    assert state.scaled_error[0] == pytest.approx(0.0)
    assert state.coverage[0] == 1.0
    assert state.confidence[0] == 1.0


def test_scaled_error_and_coverage_match_hand_computation():
    values = [10.0, 12.0, 10.0, 12.0]
    state = feed(values, [11.0] * 4, [11.0] * 4)  # long half-life: plain means
    # mean |error| 1, mean |one-step change| 2 -> 0.5; half the values are under 11
    assert state.scaled_error[0] == pytest.approx(0.5)
    assert state.coverage[0] == pytest.approx(0.5)
    assert state.confidence[0] == pytest.approx(1 - 1 / 11)


def test_missing_realised_value_leaves_the_row_unchanged():
    state = update_accuracy(AccuracyState.empty(2), [1.0, 1.0], [0.0, 0.0], [2.0, 2.0])
    after = update_accuracy(state, [np.nan, 3.0], [0.0, 0.0], [2.0, 2.0])
    assert after.updates.tolist() == [1, 2]
    assert after.abs_error[0] == state.abs_error[0]
    assert after.abs_error[1] != state.abs_error[1]


def test_recent_errors_weigh_more_with_a_short_half_life():
    values = np.zeros(60)
    medians = np.r_[np.zeros(50), np.full(10, 5.0)]  # accurate, then badly off
    short = feed(values, medians, medians, half_life=3)
    long = feed(values, medians, medians, half_life=1000)
    assert short.abs_error[0] > 2 * long.abs_error[0]


def test_empty_state_reports_no_confidence_and_unknown_coverage():
    state = AccuracyState.empty(3)
    assert np.all(state.confidence == 0.0)
    assert np.all(np.isnan(state.coverage))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        update_accuracy(AccuracyState.empty(2), [1.0], [1.0], [1.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)),
                min_size=1, max_size=30))
def test_figures_stay_in_range(triples):
    state = feed(*zip(*triples), half_life=5)
    assert 0.0 <= state.coverage[0] <= 1.0
    assert 0.0 <= state.confidence[0] <= 1.0
    assert state.scaled_error[0] >= 0.0 and np.isfinite(state.scaled_error[0])
