"""China days and months, as caps and gift limits count them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from puhui.domain import china_time


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_midnight_in_beijing_is_16_00_utc() -> None:
    first_of_november = ms(datetime(2026, 10, 31, 16, tzinfo=UTC))
    assert china_time.day_of_ms(first_of_november) == date(2026, 11, 1)
    assert china_time.day_of_ms(first_of_november - 1) == date(2026, 10, 31)
    assert china_time.month_start_ms(first_of_november) == first_of_november
    assert china_time.next_month_ms(first_of_november - 1) == first_of_november
    assert china_time.day_start(datetime(2026, 11, 1, 15, 59, tzinfo=UTC)) == datetime(
        2026, 10, 31, 16, tzinfo=UTC
    )


@given(st.integers(0, 4_102_444_800_000))  # 1970 to 2100
def test_an_instant_lies_in_its_month(instant: int) -> None:
    start, end = china_time.month_start_ms(instant), china_time.next_month_ms(instant)
    assert start <= instant < end
    assert china_time.day_of_ms(start).day == 1
    assert china_time.day_of_ms(end).day == 1
    assert china_time.month_start_ms(end) == end
