"""Which published figures are shown: worked examples of `domain.disclosure` with k = 10."""

from __future__ import annotations

import pytest

from puhui.domain import disclosure
from puhui.domain.errors import ConfigurationError

K = 10


def test_a_cell_of_nine_citizens_is_suppressed_and_one_of_ten_is_shown() -> None:
    assert disclosure.suppressed([9], K) == [True]
    assert disclosure.suppressed([10], K) == [False]


def test_a_table_with_every_cell_at_k_or_more_shows_them_all() -> None:
    assert disclosure.suppressed([25, 10, 40, 11], K) == [False, False, False, False]


def test_a_cell_suppressed_alone_takes_the_smallest_shown_cell_with_it() -> None:
    # Provinces of 25, 9, 12 and 40 citizens: 9 is suppressed; with 12 shown, the total minus
    # the shown provinces would give the 9 exactly, so 12 is suppressed too.
    assert disclosure.suppressed([25, 9, 12, 40], K) == [False, True, True, False]


def test_several_small_cells_still_take_the_smallest_shown_cell() -> None:
    # 3 and 4 together could be as few as 4 citizens: subtracting from the total must not give
    # a figure of fewer than 10, so the 30 goes with them.
    assert disclosure.suppressed([3, 30, 4, 50], K) == [True, True, True, False]


def test_of_shown_cells_that_tie_the_first_is_suppressed() -> None:
    assert disclosure.suppressed([12, 2, 12], K) == [True, True, False]


def test_when_every_cell_is_small_nothing_is_left_to_suppress_besides() -> None:
    assert disclosure.suppressed([1, 2, 3], K) == [True, True, True]
    assert disclosure.suppressed([], K) == []


def test_a_cell_describing_no_citizen_is_suppressed() -> None:
    assert disclosure.suppressed([0, 15, 20], K) == [True, True, False]


def test_a_total_of_fewer_than_k_citizens_is_suppressed() -> None:
    assert disclosure.total_suppressed(9, K)
    assert not disclosure.total_suppressed(10, K)


def test_k_is_what_the_rule_is_given() -> None:
    assert disclosure.suppressed([9, 30], 5) == [False, False]
    assert disclosure.suppressed([4, 30, 6], 5) == [True, False, True]
    assert disclosure.label(5) == "<5"


def test_k_below_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        disclosure.suppressed([3], 0)
