"""The split of a Quota's total across its namespaces (pure)."""
import pytest
from hypothesis import given, strategies as st

from quartermaster.planner.quotas import CohortMember, lend_idle, split_by_kind, split_total


def test_each_namespace_gets_its_use_plus_an_equal_share_of_the_rest():
    assert split_total(2000, [500, 0]) == [1250, 750]
    assert split_total(10, [0, 0, 0]) == [4, 3, 3], "what an equal share leaves over goes one unit at a time"


def test_over_the_total_each_gets_the_total_in_proportion_to_its_use():
    assert split_total(1000, [1500, 500]) == [750, 250]


def test_no_namespaces_get_nothing_and_negative_figures_are_refused():
    assert split_total(5, []) == []
    with pytest.raises(ValueError):
        split_total(5, [-1])


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**12), min_size=1, max_size=30))
def test_the_split_sums_to_the_total_and_covers_each_use_when_the_total_allows(total, used):
    split = split_total(total, used)
    assert sum(split) == total and min(split) >= 0
    if sum(used) <= total:
        assert all(part >= use for part, use in zip(split, used))
        assert max(p - u for p, u in zip(split, used)) - min(p - u for p, u in zip(split, used)) <= 1, \
            "the rest is shared equally"


def test_a_count_over_kinds_is_split_across_namespaces_then_across_their_kinds():
    # a runs 2 Deployments and a Job, b nothing: of the 7 left a gets 4 (7 in all) and b 3;
    # a's 4 to spare go 2, 1, 1 across its kinds
    assert split_by_kind(10, [[2, 0, 1], [0, 0, 0]]) == [[4, 1, 2], [1, 1, 1]]
    assert split_by_kind(2, [[0, 0, 0], [0, 0, 0]]) == [[1, 0, 0], [1, 0, 0]], "each namespace gets room"
    assert split_by_kind(2, [[3, 0, 1], [0, 0, 0]]) == [[2, 0, 0], [0, 0, 0]], "over the total, by use"


@given(st.integers(0, 10**6), st.lists(st.lists(st.integers(0, 10**5), min_size=3, max_size=3), min_size=1,
                                       max_size=10))
def test_the_split_by_kind_sums_to_the_total_and_covers_each_count_when_the_total_allows(total, used):
    split = split_by_kind(total, used)
    assert sum(map(sum, split)) == total
    if sum(map(sum, used)) <= total:
        assert all(part >= use for parts, uses in zip(split, used) for part, use in zip(parts, uses))



# ---- borrowing --------------------------------------------------------------------------

def borrower(limit, demand, most=None, weight=1.0):
    return CohortMember(limit, demand, weight, borrowing_limit=most)


def test_a_borrower_takes_what_its_demand_exceeds_its_limit_by_from_the_idle_and_the_lender_shrinks():
    assert lend_idle([CohortMember(10, 4), borrower(4, 8)]) == [-4, 4]
    assert lend_idle([CohortMember(10, 4), borrower(4, 8, most=2)]) == [-2, 2], "up to its borrowing limit"
    assert lend_idle([CohortMember(10, 4, lending_limit=1), borrower(4, 8)]) == [-1, 1], "up to the lending limit"
    assert lend_idle([CohortMember(10, 4), CohortMember(4, 8)]) == [0, 0], "without borrowIdle nothing is borrowed"


def test_the_loan_shrinks_as_the_lender_s_demand_returns_and_ends_when_it_has_no_idle():
    loans = [lend_idle([CohortMember(10, lender), borrower(4, 8)])[1] for lender in (2, 7, 9, 10, 12)]
    assert loans == [4, 3, 1, 0, 0]


def test_scarce_idle_capacity_is_shared_by_weight_and_lenders_give_in_proportion_to_their_idle():
    # 6 idle (4 + 2) against 12 wanted: weights 1 and 2 share it 2 and 4
    assert lend_idle([CohortMember(10, 6), CohortMember(5, 3), borrower(4, 10), borrower(4, 10, weight=2)]) == [
        -4, -2, 2, 4]
    # what one borrower cannot take goes to the other
    assert lend_idle([CohortMember(10, 0), borrower(4, 10), borrower(4, 5, weight=2)]) == [-7, 6, 1]


def test_a_lender_never_lends_what_its_active_reservations_hold_used_or_not():
    # demand 2, reserved 6 of a limit of 10: 4 idle to lend, not 8
    assert lend_idle([CohortMember(10, 2, reserved=6), borrower(4, 10)]) == [-4, 4]
    assert lend_idle([CohortMember(10, 7, reserved=6), borrower(4, 10)]) == [-3, 3], "demand over the reservation"
    assert lend_idle([CohortMember(10, 0, reserved=10), borrower(4, 10)]) == [0, 0], "all of it reserved"
    # the pool's idle capacity less the reservations: two lenders, one reserving
    assert lend_idle([CohortMember(10, 0, reserved=8), CohortMember(5, 0), borrower(4, 20)]) == [-2, -5, 7]


def test_negative_figures_are_refused():
    with pytest.raises(ValueError):
        lend_idle([CohortMember(-1, 0)])
    with pytest.raises(ValueError):
        lend_idle([CohortMember(1, 0, reserved=-1)])


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 2000), st.integers(1, 5),
                          st.one_of(st.none(), st.integers(0, 500)), st.one_of(st.none(), st.integers(0, 500)),
                          st.integers(0, 1000)),
                min_size=1, max_size=8))
def test_loans_sum_to_zero_respect_every_limit_and_leave_each_lender_its_demand_and_reservation(rows):
    members = [CohortMember(limit, demand, weight, most, lending, reserved)
               for limit, demand, weight, most, lending, reserved in rows]
    changes = lend_idle(members)
    assert sum(changes) == 0
    for m, change in zip(members, changes):
        if change > 0:
            assert change <= m.demand - m.limit and (m.borrowing_limit is None or change <= m.borrowing_limit)
        if change < 0:
            assert m.limit + change >= m.demand and (m.lending_limit is None or -change <= m.lending_limit)
            assert m.limit + change >= min(m.limit, m.reserved), "a reservation within the limit is never lent"
