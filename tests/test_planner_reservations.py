"""Reservations' time windows and what they hold back (pure)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from quartermaster.operator.conditions import rfc3339
from quartermaster.planner.reservations import DAY, Reservation, Window, floors, held

FRIDAY_8AM = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a Friday
HOUR = 3600.0
NIGHTS = Window(22 * 60, 6 * 60)  # 22:00 to 06:00 UTC, every day
FRIDAY_NIGHT = Window(22 * 60, 6 * 60, frozenset({4}))
OFFICE = Window(9 * 60, 17 * 60, frozenset(range(5)))  # 09:00 to 17:00, Monday to Friday


def seen(window, hours_after):
    active, start, end = window.around(FRIDAY_8AM + hours_after * HOUR)
    return active, rfc3339(start), rfc3339(end)


def test_a_window_crossing_midnight_holds_from_its_start_to_the_next_morning():
    assert seen(NIGHTS, 0) == (False, "2027-01-15T22:00:00Z", "2027-01-16T06:00:00Z"), "the next one"
    assert seen(NIGHTS, 14) == (True, "2027-01-15T22:00:00Z", "2027-01-16T06:00:00Z"), "from its start"
    assert seen(NIGHTS, 19) == (True, "2027-01-15T22:00:00Z", "2027-01-16T06:00:00Z"), "past midnight"
    assert seen(NIGHTS, 22) == (False, "2027-01-16T22:00:00Z", "2027-01-17T06:00:00Z"), "not at its end"
    # before Friday's 06:00, the window that began on Thursday evening holds
    assert seen(NIGHTS, -3) == (True, "2027-01-14T22:00:00Z", "2027-01-15T06:00:00Z")


def test_days_are_the_days_a_window_starts_on():
    assert seen(FRIDAY_NIGHT, 21) == (True, "2027-01-15T22:00:00Z", "2027-01-16T06:00:00Z"), \
        "Friday's window runs into Saturday"
    assert seen(FRIDAY_NIGHT, 23) == (False, "2027-01-22T22:00:00Z", "2027-01-23T06:00:00Z"), "a week on"
    assert seen(FRIDAY_NIGHT, -3)[0] is False, "Thursday's night is not Friday's"
    assert seen(OFFICE, 2) == (True, "2027-01-15T09:00:00Z", "2027-01-15T17:00:00Z")
    assert seen(OFFICE, 10) == (False, "2027-01-18T09:00:00Z", "2027-01-18T17:00:00Z"), "after Friday: Monday"


def test_a_window_is_within_a_day_and_on_some_weekday():
    for start, end, days in ((60, 60, range(7)), (0, 1440, range(7)), (-1, 60, range(7)), (60, 120, ()),
                             (60, 120, (7,))):
        with pytest.raises(ValueError):
            Window(start, end, frozenset(days))


@given(st.integers(0, 1439), st.integers(0, 1439), st.frozensets(st.integers(0, 6), min_size=1),
       st.floats(0, 4e9), st.floats(0, 1))
def test_the_window_around_a_time_is_the_one_holding_it_or_else_the_next(start, end, days, t, fraction):
    if start == end:
        return
    window = Window(start, end, days)
    active, begins, ends = window.around(t)
    assert begins < ends and ends - begins < DAY and t < ends and active == (begins <= t)
    assert ((begins // DAY + 3) % 7) in days and begins % DAY == start * 60, "it starts at its time on its day"
    assert window.around(begins)[0] and not window.around(ends)[0]
    if not active:
        between = t + fraction * (begins - t)
        assert between == begins or not window.around(between)[0], "nothing holds before the next one starts"


def test_what_active_reservations_hold_adds_up_per_resource():
    batch = Reservation({"cpu": 4.0, "memory": 8 * 2.0**30}, NIGHTS)
    always = Reservation({"cpu": 1.0})
    assert held([batch, always], FRIDAY_8AM) == {"cpu": 1.0}
    assert held([batch, always], FRIDAY_8AM + 15 * HOUR) == {"cpu": 5.0, "memory": 8 * 2.0**30}
    assert held([], FRIDAY_8AM) == {}


def test_a_group_keeps_what_is_reserved_for_it_each_member_its_part_as_far_as_it_holds_it():
    current = np.array([[2.0, 4.0], [2.0, 4.0], [6.0, 1.0]])
    first_two = np.array([True, True, False])
    # 3 cores of the 4 they hold: 1.5 each; 16 GiB reserved but 8 held: all they hold
    assert floors(current, [(first_two, np.array([3.0, 16.0]))]).tolist() == [[1.5, 4.0], [1.5, 4.0], [0.0, 0.0]]
    # in two groups, the highest floor; a group that holds nothing has none
    both = floors(current, [(first_two, np.array([3.0, 0.0])), (np.array([True, False, True]), np.array([8.0, 1.0]))])
    assert both.tolist() == [[2.0, 0.8], [1.5, 0.0], [6.0, 0.2]]
    assert floors(np.zeros((2, 2)), [(np.array([True, True]), np.array([1.0, 1.0]))]).tolist() == [[0, 0], [0, 0]]
    assert floors(current, []).tolist() == np.zeros((3, 2)).tolist()
