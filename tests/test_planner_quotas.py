"""The split of a Quota's total across its namespaces (pure)."""
import pytest
from hypothesis import given, strategies as st

from quartermaster.planner.quotas import split_by_kind, split_total


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
