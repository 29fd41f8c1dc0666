"""What anyone may read of the statistics: the figures of `service.oversight`, every one that
describes fewer than k distinct citizens suppressed (`domain.disclosure` states the rule; k is
`Settings.min_cell`). The public dashboard, its downloads and the public API read these;
operators and regulators read `service.oversight` itself.

Reductions are published by province, scene, platform and month only: none of these nests in
another, whereas a region's figures, or a day's, could be subtracted from its province's, or
its month's, to give away a cell that complementary suppression hid within its own table.

A cell's citizens: for reductions, the distinct citizens credited in the value (kept in the
tallies); for a reason of duplicates or rejections, the distinct citizens of the records with
that reason, counted from the records (a record whose citizen could not be read counts none),
at most once every `RECOUNT_S` seconds in a process: that count never goes down as records
arrive (an erasure keeps a record's citizen number), so a count read a little earlier is never
more than the true one, and a figure it lets through is still publishable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from puhui.bootstrap import App
from puhui.domain import disclosure
from puhui.domain.reasons import Reason
from puhui.service import oversight

# How long a process reuses the distinct citizens of each reason it counted from the records.
RECOUNT_S = 60.0


class Breakdown(StrEnum):
    """What published reductions can be broken down by."""

    PROVINCE = "province"
    SCENE = "scene"
    PLATFORM = "platform"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class PublishedReduction:
    """Credited reductions of one value of a dimension; None where suppressed."""

    key: str
    credited_g: int | None
    records: int | None
    participants: int | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class PublishedTotals:
    """Everything credited, in one line; None where suppressed (fewer than k citizens in all).

    `received` (every record received, whatever its receipt) is what shares of duplicates and
    rejections are counted against."""

    credited_g: int | None
    records: int | None
    participants: int | None
    platforms: int
    received: int | None
    suppressed: bool


@dataclass(frozen=True, slots=True)
class PublishedOutcome:
    """Records found duplicate or rejected for one reason, over every platform; None where
    suppressed."""

    status: str
    reason: str
    records: int | None
    suppressed: bool


def min_cell(app: App) -> int:
    """k: the fewest distinct citizens a published figure may describe."""
    return app.settings.min_cell


def reductions(app: App, by: Breakdown) -> list[PublishedReduction]:
    """Grams credited, credited records and distinct citizens per value of a dimension, in
    the order of `oversight.reductions`, with every small cell and its complement
    suppressed."""
    rows = oversight.reductions(app, oversight.Dimension(by.value))
    hidden = disclosure.suppressed([r.participants for r in rows], min_cell(app))
    return [
        PublishedReduction(r.key, None, None, None, True)
        if h
        else PublishedReduction(r.key, r.credited_g, r.records, r.participants, False)
        for r, h in zip(rows, hidden, strict=True)
    ]


def totals(app: App) -> PublishedTotals:
    """Everything credited, unless it describes fewer than k citizens."""
    found = oversight.totals(app)
    if disclosure.total_suppressed(found.participants, min_cell(app)):
        return PublishedTotals(None, None, None, found.platforms, None, True)
    return PublishedTotals(
        found.credited_g, found.records, found.participants, found.platforms, found.received, False
    )


def outcomes(app: App) -> list[PublishedOutcome]:
    """Duplicates and rejections by status and reason over every platform, most records
    first, with every small cell and its complement suppressed."""
    records: dict[tuple[str, str], int] = {}
    for row in oversight.outcomes(app):
        if row.status != "credited":
            key = (row.status, row.reason)
            records[key] = records.get(key, 0) + row.records
    people = _outcome_participants(app)
    ordered = sorted(records.items(), key=lambda kv: (-kv[1], kv[0]))
    hidden = disclosure.suppressed([people.get(key, 0) for key, _ in ordered], min_cell(app))
    return [
        PublishedOutcome(status, reason, None if h else n, h)
        for ((status, reason), n), h in zip(ordered, hidden, strict=True)
    ]


def _outcome_participants(app: App) -> dict[tuple[str, str], int]:
    """Distinct citizens per (status, reason) of the records not credited, as counted at most
    `RECOUNT_S` seconds ago."""
    counted: tuple[float, dict[tuple[str, str], int]] | None = app.memo.get("reason citizens")
    now = time.monotonic()
    if counted is None or now - counted[0] >= RECOUNT_S:
        rows = app.reports().outcome_participants([r.value for r in Reason])
        counted = (now, {(str(status), str(reason)): int(n) for status, reason, n in rows})
        app.memo["reason citizens"] = counted
    return counted[1]
