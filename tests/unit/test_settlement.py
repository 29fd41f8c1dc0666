"""Worked examples of the statement of settlement (`domain.settlement`), record by record.

Times are minutes after 08:00 on 1 October 2026 (China time); a trip of citizen 1 unless a test
says otherwise.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from puhui.domain.reasons import Reason, Status
from puhui.domain.settlement import (
    Book,
    Candidate,
    Caps,
    Claim,
    Decision,
    Role,
    Usage,
    settle,
)

DAY = date(2026, 10, 1)
T0 = 1_790_812_800_000  # 2026-10-01T08:00+08:00
MIN = 60_000


def trip(seq: int, start: int, end: int, **more: Any) -> Candidate:
    """A valid bus trip from minute `start` to minute `end` of citizen 1, 500 g computed."""
    fields: dict[str, Any] = {
        "seq": seq,
        "key": ("amap", f"r{seq}"),
        "digest": f"d{seq}",
        "citizen": 1,
        "scene": "bus",
        "start_ms": T0 + start * MIN,
        "end_ms": T0 + end * MIN,
        "day": DAY,
        "computed_g": 500,
        "methodology": "cn-common@1.0.0",
    }
    fields.update(more)
    return Candidate(**fields)


def event(seq: int, **more: Any) -> Candidate:
    """A valid paperless event of citizen 1 at 08:00, 24 g computed."""
    fields: dict[str, Any] = {"scene": "paperless", "end_ms": None, "computed_g": 24}
    fields.update(more)
    return trip(seq, 0, 0, **fields)


def decide(*records: Candidate, book: Book | None = None) -> list[tuple[str, str, int]]:
    return [(d.status, d.reason, d.reduction_g) for d in settle(records, book)]


def test_a_first_record_is_credited_what_it_computed() -> None:
    """Nothing before it, no cap: credited in full, no reason."""
    assert decide(trip(1, 0, 20)) == [("credited", "", 500)]


def test_a_replay_gets_the_first_receipt_and_a_changed_one_is_a_conflict() -> None:
    """Same key, same content: the same receipt; same key, other content: refused."""
    first = trip(1, 0, 20)
    again = trip(2, 0, 20, key=first.key, digest=first.digest)
    changed = trip(3, 0, 20, key=first.key, digest="other")
    decisions = list(settle([first, again, changed]))
    assert [d.role for d in decisions] == [Role.NEW, Role.REPLAY, Role.CONFLICT]
    assert decisions[1] == Decision(
        2, Role.REPLAY, Status.CREDITED, "", 500, first.methodology, None, 1
    )
    assert decisions[2] == Decision(3, Role.CONFLICT, Status.REJECTED, "conflict", 0, None, None, 1)


def test_a_rejected_record_never_blocks_the_same_behaviour() -> None:
    """A broken report of a ride, then the ride: the ride is credited."""
    broken = trip(1, 0, 20, checks=("unknown_region",), ref="t-1")
    assert decide(broken, trip(2, 0, 20, ref="t-1")) == [
        ("rejected", "unknown_region", 0),
        ("credited", "", 500),
    ]


def test_an_unkeyed_record_leaves_nothing_behind() -> None:
    """Another platform's record is rejected and the same key stays free."""
    stray = trip(1, 0, 20, key=None, checks=("platform_mismatch",))
    decisions = list(settle([stray, trip(2, 0, 20)]))
    assert (decisions[0].role, decisions[0].receipt_seq) == (Role.UNKEYED, None)
    assert decisions[1].status == Status.CREDITED


def test_the_same_ref_is_one_behaviour_whatever_the_platform() -> None:
    """An event's ref seen before, on another platform: a duplicate of the first."""
    a = event(1, ref="inv-7")
    b = event(2, key=("bank", "x"), ref="inv-7")
    decisions = list(settle([a, b]))
    assert (decisions[1].status, decisions[1].reason, decisions[1].duplicate_of) == (
        Status.DUPLICATE,
        Reason.DUPLICATE_REF,
        1,
    )


def test_the_same_ref_in_another_scene_is_another_behaviour() -> None:
    """A ref names evidence of one scene."""
    assert decide(event(1, ref="x"), event(2, ref="x", scene="recycling"))[1][0] == "credited"


@pytest.mark.parametrize(
    ("second", "status"),
    [((9, 29), "duplicate"), ((10, 30), "credited"), ((0, 100), "duplicate")],
    ids=["more than half", "exactly half", "inside a longer trip"],
)
def test_trips_overlapping_by_more_than_half_of_the_shorter_are_one(
    second: tuple[int, int], status: str
) -> None:
    """08:00–08:20, then another trip: 10 of 20 minutes shared is clock skew, more is one."""
    assert decide(trip(1, 0, 20), trip(2, *second))[1][0] == status


def test_a_duplicate_blocks_like_a_credit_and_names_the_earliest_claim() -> None:
    """A ref duplicate that also overlaps an earlier trip names both reasons and the earliest."""
    decisions = list(
        settle([trip(1, 0, 20), trip(2, 100, 120, ref="t"), trip(3, 102, 122, ref="t")])
    )
    assert decisions[2].reason == "duplicate_ref;duplicate_overlap"
    assert decisions[2].duplicate_of == 2
    blocked = list(settle([trip(1, 0, 20, ref="a"), trip(2, 1, 21), trip(3, 2, 22)]))
    assert [d.duplicate_of for d in blocked] == [None, 1, 1]


def test_count_caps_count_every_credited_record_even_at_zero_grams() -> None:
    """Two a day: the third is credited 0 g, capped; a gram cap left one of them at 0 g."""
    caps = Caps(day_max_count=2, day_max_g=600)
    got = decide(trip(1, 0, 20, caps=caps), trip(2, 30, 50, caps=caps), trip(3, 60, 80, caps=caps))
    assert got == [("credited", "", 500), ("credited", "capped", 100), ("credited", "capped", 0)]


def test_gram_caps_give_what_remains_under_the_day_then_the_month() -> None:
    """300 g credited earlier this month, 200 g earlier today: the month cap binds first."""
    book = Book.of(
        usage_by_day={
            (1, "bus", date(2026, 10, 1)): Usage(1, 200),
            (1, "bus", date(2026, 9, 30)): Usage(9, 900),
        }
    )
    caps = Caps(day_max_g=900, month_max_g=800)
    # The September day counts towards September only.
    assert decide(trip(1, 0, 20, caps=caps), book=book) == [("credited", "", 500)]
    book = Book.of(usage_by_day={(1, "bus", date(2026, 10, 2)): Usage(1, 300)})
    assert decide(trip(1, 0, 20, caps=caps), trip(2, 30, 50, caps=caps), book=book) == [
        ("credited", "", 500),
        ("credited", "capped", 0),
    ]


def test_each_record_meets_its_own_methodologys_cap_against_what_was_credited() -> None:
    """One citizen's bus rides on one day under two methodologies: 900 g a day in one place,
    1 500 g in the other. After 900 g credited under the first, the second ride gets the 600 g
    that remain under its own cap."""
    chengdu = trip(1, 0, 30, computed_g=1_008, caps=Caps(day_max_g=900))
    beijing = trip(2, 60, 80, computed_g=1_079, caps=Caps(day_max_g=1_500), methodology="bj@1")
    assert decide(chengdu, beijing) == [("credited", "capped", 900), ("credited", "capped", 600)]


def test_a_book_from_the_database_decides_as_the_whole_history_would() -> None:
    """Stored receipts, claims and usage stand in for the records before the chunk."""
    history = [
        trip(1, 0, 20, ref="t", caps=Caps(day_max_count=2)),
        trip(2, 30, 50, caps=Caps(day_max_count=2)),
    ]
    chunk = [
        trip(3, 0, 20, key=("amap", "r1"), digest="d1"),
        trip(4, 40, 60, ref="t", caps=Caps(day_max_count=2)),
        trip(5, 100, 120, caps=Caps(day_max_count=2)),
    ]
    whole = list(settle(history + chunk))
    stored = whole[:2]
    book = Book.of(
        known=[(c.key, c.digest, d) for c, d in zip(history, stored, strict=True) if c.key],
        claims=[Claim(c.seq, c.scene, c.ref, c.citizen, c.start_ms, c.end_ms) for c in history],
        usage_by_day={(1, "bus", DAY): Usage(2, 1_000)},
    )
    assert list(settle(chunk, book)) == whole[2:]


def test_records_must_come_in_receive_order() -> None:
    """Receive order is the only order: a record out of it is refused."""
    with pytest.raises(ValueError, match="receive order"):
        list(settle([trip(2, 0, 20), trip(1, 30, 50)]))
