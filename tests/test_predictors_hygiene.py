"""Input hygiene: gaps, glitches, counter resets, and what counts as not a series."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quartermaster.predictors.hygiene import MAX_POINTS, as_batch, as_series, clean


def test_gap_is_interpolated_linearly_and_ends_are_held():
    raw = np.array([[np.nan, 1.0, np.nan, np.nan, 4.0, np.inf]])
    batch = clean(raw)
    np.testing.assert_allclose(batch.values[0], [1.0, 1.0, 2.0, 3.0, 4.0, 4.0])
    assert batch.observed[0] == 2


def test_all_missing_row_becomes_zeros_with_no_observations():
    batch = clean(np.full((2, 5), np.nan))
    assert np.all(batch.values == 0.0)
    assert list(batch.observed) == [0, 0]


def test_rare_negative_glitch_is_treated_as_missing():
    raw = np.full((1, 100), 10.0)
    raw[0, 50] = -5.0
    batch = clean(raw)
    assert batch.values[0, 50] == 10.0
    assert batch.nonnegative[0]


def test_signed_signal_keeps_its_negative_values():
    raw = np.sin(np.arange(100.0))[None, :]
    batch = clean(raw)
    np.testing.assert_allclose(batch.values, raw)
    assert not batch.nonnegative[0]


def test_counter_reset_is_unrolled_and_offset_recorded():
    counter = np.r_[np.arange(0.0, 300.0), np.arange(0.0, 200.0)]  # resets once, at 300
    batch = clean(counter[None, :])
    assert np.all(np.diff(batch.values[0]) >= 0)  # the reset step itself adds the new value, 0
    assert batch.values[0, -1] == 299.0 + 199.0
    assert batch.reset_offset[0] == 299.0


def test_gauge_that_wobbles_is_not_a_counter():
    gauge = 50 + 10 * np.sin(np.arange(500) / 10.0)
    batch = clean(gauge[None, :])
    np.testing.assert_allclose(batch.values[0], gauge)
    assert batch.reset_offset[0] == 0.0


def test_very_long_history_is_cut_to_the_most_recent_points():
    batch = clean(np.arange(MAX_POINTS + 100, dtype=float)[None, :])
    assert batch.values.shape[1] == MAX_POINTS
    assert batch.values[0, -1] == MAX_POINTS + 99


@pytest.mark.parametrize("bad", [None, "1,2,3", {"a": 1}, 3.0, [[1.0, 2.0]], [[1, 2], [3]],
                                 ["a", "b"], np.array([True, False]), np.array([1 + 2j])])
def test_not_a_series_raises_value_error(bad):
    with pytest.raises(ValueError):
        as_series(bad)


def test_batch_must_be_two_dimensional():
    with pytest.raises(ValueError):
        as_batch(np.zeros(5))
    assert as_batch([[1, 2], [3, 4]]).dtype == np.float64


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(0, 60)),
              elements=st.one_of(st.floats(-1e6, 1e6), st.just(np.nan), st.just(np.inf))))
def test_clean_rows_are_always_finite(raw):
    batch = clean(raw)
    assert batch.values.shape == raw.shape
    assert np.all(np.isfinite(batch.values))
    assert np.all(batch.observed <= raw.shape[1])
