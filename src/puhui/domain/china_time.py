"""China Standard Time: the day and month a behaviour, a cap or a gift limit belongs to.

Days and months are those of Asia/Shanghai, UTC+8 all year (no daylight saving time), so plain
offsets are exact. Instants are epoch milliseconds (intake) or aware datetimes (accounts).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

OFFSET = timedelta(hours=8)
OFFSET_MS = 8 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
EPOCH = date(1970, 1, 1)


def moment_of_ms(ms: int | None) -> datetime | None:
    """The aware moment (UTC) of an instant in epoch milliseconds; None for None."""
    return None if ms is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def day_of_ms(ms: int) -> date:
    """The China day of an instant in epoch milliseconds."""
    return EPOCH + timedelta(days=(ms + OFFSET_MS) // DAY_MS)


def day_start_ms(day: date) -> int:
    """The instant a China day starts, in epoch milliseconds."""
    return (day - EPOCH).days * DAY_MS - OFFSET_MS


def month_start_ms(ms: int) -> int:
    """The instant the China month of an instant starts."""
    day = day_of_ms(ms)
    return day_start_ms(date(day.year, day.month, 1))


def next_month_ms(ms: int) -> int:
    """The instant the China month after that of an instant starts."""
    day = day_of_ms(ms)
    return day_start_ms(date(day.year + (day.month == 12), day.month % 12 + 1, 1))


def day_start(at: datetime) -> datetime:
    """The moment (UTC) the China day of an aware moment started."""
    local = (at.astimezone(UTC) + OFFSET).date()
    return datetime.combine(local, datetime.min.time(), UTC) - OFFSET
