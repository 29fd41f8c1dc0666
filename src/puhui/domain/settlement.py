"""Settlement, stated once: one behaviour, one credit, first received wins, up to the caps.

This module is the plain statement of the spec's settlement rules
(`spec/activity-record-v1.md`, "One behaviour, one credit" and "Receipt"). It decides records one
at a time in receive order, which is what the rules say; it is the judge every engine rendering
is tested against (the DuckDB statement of `adapters/batch/settle.py` for large chunks), and it
settles small chunks itself, over what the database already holds of the chunk's keys.

The rules, for each record in receive order (`seq`):

1. **Unkeyed.** A record without a (platform, record_id) of its own (no `record_id`, another
   platform's record, a `record_id` over 128 characters, a row that could not be parsed) is
   rejected with its checks and leaves nothing behind.
2. **Replay.** A record whose (platform, record_id) was received before is answered with the
   first one's receipt when its content (digest) is the same, and refused as a `conflict` when
   it differs. It changes nothing else.
3. **Rejected.** A record that failed a check is rejected with every reason it failed. It never
   blocks another record.
4. **Duplicate.** A valid record is a duplicate when an earlier claim is the same behaviour: the
   same scene and `ref` (`duplicate_ref`), or a trip of the same citizen overlapping it by more
   than half of the shorter interval (`duplicate_overlap`). Claims are the valid records received
   before, credited or duplicate: a duplicate is the same behaviour as a credit. Its receipt
   names the earliest such claim.
5. **Credited, up to the caps.** Otherwise the record is credited. Per citizen, scene and period
   (China day, China month), count caps first: a record is credited 0 g when its methodology's
   day or month count is already reached (every credited record counts, even one left at 0 g).
   Then gram caps, day before month: the record gets what remains under each cap of its
   methodology, given the grams already credited in that period. A record credited less than
   it computed carries reason `capped`.

Nothing here depends on how records were split into files, chunks or submissions: receive order
is the only order.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from puhui.domain.methodology import SceneRule
from puhui.domain.reasons import Reason, Status
from puhui.domain.rules import LONGEST_TRIP_MS


class Role(StrEnum):
    """What a record is to settlement: decided now, or answered from an earlier record."""

    NEW = "new"  # first received under its key: decided now, stored
    REPLAY = "replay"  # same key, same content as an earlier record: its receipt again
    CONFLICT = "conflict"  # same key, other content: refused
    UNKEYED = "unkeyed"  # no key of its own: rejected, nothing stored


class Caps(NamedTuple):
    """A methodology's limits for one scene, per citizen and China day or month (None: none)."""

    day_max_g: int | None = None
    day_max_count: int | None = None
    month_max_g: int | None = None
    month_max_count: int | None = None


NO_CAPS = Caps()


def caps_of(rule: SceneRule) -> Caps:
    """The limits a methodology's rule for a scene sets, as settlement applies them."""
    day, month = rule.cap("day"), rule.cap("month")
    return Caps(
        day.max_g if day else None,
        day.max_count if day else None,
        month.max_g if month else None,
        month.max_count if month else None,
    )


class Candidate(NamedTuple):
    """A record as settlement sees it: validated, pseudonymised and quantified.

    Attributes:
        seq: receive order; smaller is received earlier.
        key: (platform, record_id), or None when the record has no key of its own.
        digest: of the normalised content, to tell a replay from a conflict.
        checks: every reason it failed validation or quantification; empty when valid.
        citizen: the citizen's id (or pseudonym); None when the subject is malformed.
        scene: scene code, None when unknown.
        ref: evidence reference, trimmed and case-folded, None when absent.
        start_ms: when it began, epoch milliseconds (UTC).
        end_ms: when a trip ended, epoch milliseconds; None for events.
        day: the China day it started on (caps count per China day and month).
        computed_g: grams its methodology computes, before caps.
        methodology: `id@version` that quantified it, None when none did.
        caps: its methodology's caps for its scene.
    """

    seq: int
    key: tuple[object, str] | None
    digest: str
    checks: tuple[str, ...] = ()
    citizen: object = None
    scene: str | None = None
    ref: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    day: date | None = None
    computed_g: int = 0
    methodology: str | None = None
    caps: Caps = NO_CAPS

    @property
    def is_trip(self) -> bool:
        """Trips have an end; events are a moment."""
        return self.end_ms is not None


class Decision(NamedTuple):
    """A record's receipt as settlement decides it.

    Attributes:
        seq: the record.
        role: how it was decided (see `Role`).
        status: credited, duplicate or rejected.
        reason: reason codes joined by `;`, empty when credited in full.
        reduction_g: grams credited (0 unless credited).
        methodology: `id@version`, None when rejected.
        duplicate_of: seq of the earliest claim of the same behaviour (duplicates only).
        receipt_seq: the record whose receipt this is: itself, or the one it replays or
            conflicts with; None when unkeyed.
    """

    seq: int
    role: Role
    status: Status
    reason: str
    reduction_g: int
    methodology: str | None
    duplicate_of: int | None
    receipt_seq: int | None


class Claim(NamedTuple):
    """A record that holds its behaviour: valid and stored, credited or duplicate."""

    seq: int
    scene: str | None
    ref: str | None
    citizen: object
    start_ms: int | None
    end_ms: int | None


class Usage(NamedTuple):
    """Records credited and grams credited so far in one citizen's scene and period."""

    records: int = 0
    grams: int = 0


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Two trips are one behaviour when they overlap by more than half of the shorter.

    >>> overlaps(0, 100, 40, 140)   # 60 of 100
    True
    >>> overlaps(0, 100, 50, 150)   # exactly half: clock skew
    False
    """
    shared = min(a_end, b_end) - max(a_start, b_start)
    return 2 * shared > min(a_end - a_start, b_end - b_start)


def month_of(day: date) -> date:
    """The first day of a China day's month: the key of monthly caps."""
    return day.replace(day=1)


@dataclass
class Book:
    """What settlement knows when it decides the next record: the receipts given under each
    key, the claims, and the usage of each citizen's scene per day and month.

    A book starts empty (the whole history settled at once) or from what the database holds of
    a chunk's keys (`known`, `claims`, `usage_by_day`), which is all a chunk's records can meet.
    """

    known: dict[tuple[object, str], Decision] = field(default_factory=dict)
    digests: dict[tuple[object, str], str] = field(default_factory=dict)
    by_ref: dict[tuple[str | None, str], int] = field(default_factory=dict)
    trips: dict[object, list[Claim]] = field(default_factory=lambda: defaultdict(list))
    day_usage: dict[tuple[object, str | None, date], Usage] = field(
        default_factory=lambda: defaultdict(Usage)
    )
    month_usage: dict[tuple[object, str | None, date], Usage] = field(
        default_factory=lambda: defaultdict(Usage)
    )

    @classmethod
    def of(
        cls,
        known: Iterable[tuple[tuple[object, str], str, Decision]] = (),
        claims: Iterable[Claim] = (),
        usage_by_day: Mapping[tuple[object, str, date], Usage] | None = None,
    ) -> Book:
        """A book holding stored receipts (key, digest, decision), claims and day usage."""
        book = cls()
        for key, digest, decision in known:
            book.known[key] = decision
            book.digests[key] = digest
        for claim in sorted(claims, key=lambda c: c.seq):
            book.claim(claim)
        for (citizen, scene, day), used in (usage_by_day or {}).items():
            book.use(citizen, scene, day, used.records, used.grams)
        return book

    def claim(self, claim: Claim) -> None:
        """Hold a behaviour for the record `claim.seq` (claims arrive in receive order)."""
        if claim.ref is not None:
            self.by_ref.setdefault((claim.scene, claim.ref), claim.seq)
        if claim.start_ms is not None and claim.end_ms is not None:
            # Kept in order of start, so that a trip is compared only with those that could
            # overlap it.
            bisect.insort(self.trips[claim.citizen], claim, key=lambda t: t.start_ms or 0)

    def use(self, citizen: object, scene: str | None, day: date, count: int, grams: int) -> None:
        """Count credited records and grams towards a citizen's scene on a day and its month."""
        for usage, period in ((self.day_usage, day), (self.month_usage, month_of(day))):
            before = usage[(citizen, scene, period)]
            usage[(citizen, scene, period)] = Usage(before.records + count, before.grams + grams)

    def earliest_ref_claim(self, c: Candidate) -> int | None:
        """The earliest claim of the same scene and ref."""
        return None if c.ref is None else self.by_ref.get((c.scene, c.ref))

    def earliest_overlapping_trip(self, c: Candidate) -> int | None:
        """The earliest trip of the same citizen overlapping this one by more than half.

        No trip lasts longer than LONGEST_TRIP_MS (longer ones are rejected), so only trips
        that started less than that before this one ends can overlap it.
        """
        if c.start_ms is None or c.end_ms is None:
            return None
        trips = self.trips.get(c.citizen, [])
        first = bisect.bisect_right(
            trips, c.start_ms - LONGEST_TRIP_MS, key=lambda t: t.start_ms or 0
        )
        last = bisect.bisect_left(trips, c.end_ms, key=lambda t: t.start_ms or 0)
        found = [
            t.seq
            for t in trips[first:last]
            if t.start_ms is not None
            and t.end_ms is not None
            and overlaps(t.start_ms, t.end_ms, c.start_ms, c.end_ms)
        ]
        return min(found, default=None)

    def decide(self, c: Candidate) -> Decision:
        """Decide one record, the next in receive order, and remember what it changes."""
        if c.key is None:
            return Decision(
                c.seq, Role.UNKEYED, Status.REJECTED, ";".join(c.checks), 0, None, None, None
            )
        first = self.known.get(c.key)
        if first is not None:
            if self.digests[c.key] == c.digest:
                return Decision(
                    c.seq,
                    Role.REPLAY,
                    first.status,
                    first.reason,
                    first.reduction_g,
                    first.methodology,
                    first.duplicate_of,
                    first.seq,
                )
            return Decision(
                c.seq, Role.CONFLICT, Status.REJECTED, Reason.CONFLICT, 0, None, None, first.seq
            )
        decision = self._decide_new(c)
        self.known[c.key] = decision
        self.digests[c.key] = c.digest
        return decision

    def _decide_new(self, c: Candidate) -> Decision:
        if c.checks:
            return Decision(
                c.seq, Role.NEW, Status.REJECTED, ";".join(c.checks), 0, None, None, c.seq
            )
        by_ref = self.earliest_ref_claim(c)
        by_overlap = self.earliest_overlapping_trip(c)
        self.claim(Claim(c.seq, c.scene, c.ref, c.citizen, c.start_ms, c.end_ms))
        if by_ref is not None or by_overlap is not None:
            reasons = [
                r
                for r, found in (
                    (Reason.DUPLICATE_REF, by_ref),
                    (Reason.DUPLICATE_OVERLAP, by_overlap),
                )
                if found is not None
            ]
            earliest = min(s for s in (by_ref, by_overlap) if s is not None)
            return Decision(
                c.seq,
                Role.NEW,
                Status.DUPLICATE,
                ";".join(reasons),
                0,
                c.methodology,
                earliest,
                c.seq,
            )
        grams = self.credit_within_caps(c)
        reason = Reason.CAPPED if grams < c.computed_g else ""
        return Decision(c.seq, Role.NEW, Status.CREDITED, reason, grams, c.methodology, None, c.seq)

    def credit_within_caps(self, c: Candidate) -> int:
        """The grams a valid record, first of its behaviour, is credited; counted as used."""
        assert c.day is not None, "a valid record has a start"
        day = self.day_usage[(c.citizen, c.scene, c.day)]
        month = self.month_usage[(c.citizen, c.scene, month_of(c.day))]
        caps = c.caps
        within_count = (caps.day_max_count is None or day.records < caps.day_max_count) and (
            caps.month_max_count is None or month.records < caps.month_max_count
        )
        grams = c.computed_g if within_count else 0
        if caps.day_max_g is not None:
            grams = min(grams, max(0, caps.day_max_g - day.grams))
        if caps.month_max_g is not None:
            grams = min(grams, max(0, caps.month_max_g - month.grams))
        self.use(c.citizen, c.scene, c.day, 1, grams)
        return grams


def settle(records: Iterable[Candidate], book: Book | None = None) -> Iterator[Decision]:
    """Decide records in receive order, against a book (an empty one: the whole history).

    Raises:
        ValueError: records not in increasing receive order.
    """
    book = Book() if book is None else book
    last: int | None = None
    for record in records:
        if last is not None and record.seq <= last:
            raise ValueError(f"record {record.seq} is not after {last} in receive order")
        last = record.seq
        yield book.decide(record)
