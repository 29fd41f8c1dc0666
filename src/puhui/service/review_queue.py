"""The review queue of held records (spec v1.1), as the exchange's operators work it: what waits,
why (each signal's own account of what it measured), what every source reported of the same
citizen around it, their decisions and the policies' timeouts; each platform's review rates for
operators and regulators; and, for a citizen, their own records that were held.

A held record shows the grams it would credit while it waits; once decided, its final status,
reason and grams. The rules are `domain.review`; decisions and timeouts are
`service.review.decide_held` and `expire_held`. Nothing here names a citizen: no pseudonym,
number, device, evidence reference or coordinates, only records' platforms, ids, scenes,
regions, times and amounts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Any

from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.domain.errors import InputError, NotFoundError
from puhui.domain.methodology import MILLI
from puhui.domain.reasons import DESCRIPTIONS, Reason
from puhui.domain.review import Decision
from puhui.domain.scenes import SCENES
from puhui.service import review
from puhui.service.queries import aware

CHINA = timezone(china_time.OFFSET, "CST")
# The reasons a record is held for (`domain.review`): the policies' and the signals'.
HELD_REASONS: tuple[Reason, ...] = (
    Reason.AWAITING_CORROBORATION,
    Reason.REVIEW_REQUIRED,
    Reason.DEVICE_SHARED,
    Reason.DEVICE_HOPPING,
    Reason.VELOCITY,
    Reason.VOLUME_OUTLIER,
    Reason.BURST,
    Reason.REPEATED_TRIP,
)
# What a reviewer sees beside a held record: its citizen's records starting this close to it.
RELATED_WINDOW = timedelta(hours=12)
# A platform whose reviewed records are rejected this often, once this many were decided by
# reviewers, is flagged.
FLAG_SHARE = 0.20
FLAG_MIN_DECIDED = 5
# The longest reason a reviewer may give.
MAX_NOTE = 1_000
MAX_PAGE = 500
MAX_SEQ = 2**63 - 1


class State(StrEnum):
    """Which held records the queue lists."""

    OPEN = "open"
    DECIDED = "decided"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a record is held, in one reason's words: its code, what the code means, how the
    signal (or the policy) reads on this record, and what it measured."""

    code: str
    means: str
    why: str
    measured: list[int | None]


@dataclass(frozen=True, slots=True)
class RecordRef:
    """A record by its platform and the platform's id for it."""

    platform: str
    record_id: str


@dataclass(frozen=True, slots=True)
class Held:
    """A held record in the queue: the record, why it was held and, once decided, how it ended
    (`start`, `end` in China time; `amount` in `unit`: km for trips, the scene's unit for
    events; `reduction_g` the receipt's grams, `grams` those it held)."""

    seq: int
    platform: str
    record_id: str
    scene: str
    region: str
    start: datetime | None
    end: datetime | None
    amount: Decimal | None
    unit: str
    reduction_g: int
    grams: int
    status: str
    reasons: list[str]
    findings: list[Finding]
    policy: str | None
    held_at: datetime
    until: datetime | None
    corroborated_by: RecordRef | None
    decided_at: datetime | None
    outcome: str | None
    outcome_reason: str | None
    decided_by: str | None
    note: str | None

    @property
    def open(self) -> bool:
        """Not decided yet."""
        return self.decided_at is None

    @property
    def evidence(self) -> dict[str, dict[str, Any]]:
        """The stored evidence, by reason code: how it reads and what it measured."""
        return {f.code: {"why": f.why, "measured": f.measured} for f in self.findings}


@dataclass(frozen=True, slots=True)
class Related:
    """A record of the same citizen as a held one, from any platform; `duplicate` when it was
    found a duplicate of the held record (the same behaviour reported again)."""

    platform: str
    record_id: str
    scene: str
    region: str
    start: datetime | None
    end: datetime | None
    amount: Decimal | None
    unit: str
    status: str
    reason: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class HeldDetail:
    """A held record with the evidence of each source: its citizen's records starting within
    `RELATED_WINDOW` of it, the authority's record that corroborated it, and (held as
    `device_shared`) how many citizens its device reported within the signal's window."""

    held: Held
    related: list[Related]
    corroboration: Related | None
    device_citizens: int | None
    device_window_hours: int


@dataclass(frozen=True, slots=True)
class Rates:
    """How a platform's records fare under review: its records, those held (ever and now) and
    how the held ones ended; `rejected_share` the share of those decided by reviewers that
    they rejected (None before any), `flagged` at `FLAG_SHARE` or more once
    `FLAG_MIN_DECIDED` were decided."""

    platform: str
    records: int
    held: int
    open: int
    corroborated: int
    released: int
    rejected_on_review: int
    not_corroborated: int
    credited_uncorroborated: int

    @property
    def reviewed(self) -> int:
        """Held records decided by reviewers."""
        return self.released + self.rejected_on_review

    @property
    def rejected_share(self) -> float | None:
        return self.rejected_on_review / self.reviewed if self.reviewed else None

    @property
    def flagged(self) -> bool:
        share = self.rejected_share
        return self.reviewed >= FLAG_MIN_DECIDED and share is not None and share >= FLAG_SHARE


@dataclass(frozen=True, slots=True)
class Decided:
    """What a decision did: the records it ended, and those it left (decided already, never
    held, or unknown)."""

    decided: list[int]
    skipped: list[int]


@dataclass(frozen=True, slots=True)
class CitizenHold:
    """One of a citizen's own records that was held: `pending` while it waits (with the grams
    it would credit), else its final status (`credited` with its grams, or `rejected`)."""

    platform: str
    scene: str
    start: datetime | None
    grams: int
    state: str
    reason: str
    held_at: datetime
    decided_at: datetime | None


def queue(
    app: App,
    *,
    platform: str | None = None,
    reason: str | None = None,
    scene: str | None = None,
    region: str | None = None,
    state: State = State.OPEN,
    limit: int = 100,
    after: int = 0,
) -> list[Held]:
    """Held records after the one numbered `after`, oldest first (receive order): open ones by
    default, decided ones or all; of a platform, held for a reason, of a scene, in a region
    (a code or its prefix: `4403` is all of Shenzhen).

    Raises:
        InputError: a reason a record is never held for, or a limit out of range.
    """
    if reason is not None and reason not in HELD_REASONS:
        raise InputError(f"records are never held for {reason!r}")
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"a page holds 1 to {MAX_PAGE} records")
    if any(v is not None and not _storable(v) for v in (platform, scene, region)):
        raise InputError("a filter is text: no NUL character")
    rows = app.review_reads().queue(
        platform, reason, scene, region, State(state).value, limit, after
    )
    return [_held(row) for row in rows]


def item(app: App, seq: int) -> HeldDetail:
    """A held record with the evidence of each source.

    Raises:
        NotFoundError: no record numbered `seq` was ever held.
    """
    window = app.evidence.thresholds.device_window_ms
    found = app.review_reads().item(seq, int(RELATED_WINDOW.total_seconds() * 1000), window)
    if found is None:
        raise NotFoundError(f"record {seq} was never held")
    row, related, corroboration, citizens = found
    held = _held(row)
    shared = Reason.DEVICE_SHARED.value in held.reasons
    return HeldDetail(
        held,
        [_related(r) for r in related],
        None if corroboration is None else _related(corroboration),
        citizens if shared else None,
        window // 3_600_000,
    )


def rates(app: App) -> list[Rates]:
    """Each platform's records, held records and how they ended, by code."""
    return [
        Rates(str(code), *(int(n) for n in counts)) for code, *counts in app.review_reads().rates()
    ]


def decide(app: App, seqs: list[int], decision: Decision, by: str, note: str) -> Decided:
    """A reviewer's decision on held records: released (credited) or rejected, with the
    reviewer's reason. A record already decided, never held or unknown is skipped.

    Raises:
        InputError: no reason, a reason over `MAX_NOTE` characters or holding a control
            character other than a line break or a tab, no reviewer's name, or a record
            number out of range.
    """
    reason = note.strip()
    if not reason:
        raise InputError(
            "a decision needs a reason: say why these records are released or rejected"
        )
    if len(reason) > MAX_NOTE:
        raise InputError(f"a decision's reason is at most {MAX_NOTE} characters")
    if any(ord(c) < 32 and c not in "\r\n\t" for c in reason) or not _storable(reason):
        raise InputError("a decision's reason is text: no control characters")
    if not by.strip():
        raise InputError("a decision needs the name of who decides")
    if any(not 1 <= s <= MAX_SEQ for s in seqs):
        raise InputError(f"records are numbered 1 to {MAX_SEQ}")
    wanted = list(dict.fromkeys(seqs))
    ended = set(review.decide_held(app, wanted, decision, by.strip(), reason)) if wanted else set()
    return Decided([s for s in wanted if s in ended], [s for s in wanted if s not in ended])


def expire(app: App, at: datetime | None = None) -> list[int]:
    """End the held records whose corroboration window is over as of `at` (now by default), as
    their policies say; the seqs ended."""
    return review.expire_held(app, at)


def citizen_holds(app: App, pseudonym: str, limit: int = 100) -> list[CitizenHold]:
    """A citizen's own records that were held, newest first."""
    return [
        CitizenHold(
            str(platform),
            scene or "",
            _china(start_ms),
            int(grams) if status != "rejected" else 0,
            "pending" if status == "held" else str(status),
            reason or "",
            aware(held_at),
            None if decided_at is None else aware(decided_at),
        )
        for _seq, platform, scene, start_ms, grams, status, reason, held_at, decided_at in (
            app.review_reads().citizen_holds(pseudonym, limit)
        )
    ]


def means(code: str) -> str:
    """What a reason code means (`domain.reasons.DESCRIPTIONS`)."""
    try:
        return DESCRIPTIONS[Reason(code)]
    except ValueError:
        return ""


def _held(row: tuple[Any, ...]) -> Held:
    (seq, platform, record_id, scene, region, start_ms, end_ms, milli, reduction_g, status,
     reasons, evidence, policy, grams, held_at, until, by_platform, by_record, decided_at,
     outcome, outcome_reason, decided_by, note) = row  # fmt: skip
    codes = [c for c in (reasons or "").split(";") if c]
    return Held(
        seq=int(seq),
        platform=str(platform),
        record_id=str(record_id),
        scene=scene or "",
        region=region or "",
        start=_china(start_ms),
        end=_china(end_ms),
        amount=None if milli is None else Decimal(milli) * MILLI,
        unit=_unit(scene),
        reduction_g=int(reduction_g),
        grams=int(grams),
        status=str(status),
        reasons=codes,
        findings=_findings(codes, evidence),
        policy=policy,
        held_at=aware(held_at),
        until=None if until is None else aware(until),
        corroborated_by=None if by_platform is None else RecordRef(by_platform, by_record),
        decided_at=None if decided_at is None else aware(decided_at),
        outcome=outcome,
        outcome_reason=outcome_reason,
        decided_by=decided_by,
        note=note,
    )


def _findings(codes: list[str], evidence: str | None) -> list[Finding]:
    """Each reason's finding, in the order the record was held for them."""
    try:
        parsed = json.loads(evidence or "{}")
    except ValueError:
        parsed = {}
    found = parsed if isinstance(parsed, dict) else {}
    out = []
    for code in codes:
        entry = found.get(code)
        entry = entry if isinstance(entry, dict) else {}
        measured = entry.get("measured")
        out.append(
            Finding(
                code,
                means(code),
                str(entry.get("why") or ""),
                [m if isinstance(m, int) else None for m in measured]
                if isinstance(measured, list)
                else [],
            )
        )
    return out


def _related(row: tuple[Any, ...]) -> Related:
    platform, record_id, scene, region, start_ms, end_ms, milli, status, reason, duplicate = row
    return Related(
        str(platform),
        str(record_id),
        scene or "",
        region or "",
        _china(start_ms),
        _china(end_ms),
        None if milli is None else Decimal(milli) * MILLI,
        _unit(scene),
        str(status),
        reason or "",
        bool(duplicate),
    )


def _china(ms: int | None) -> datetime | None:
    moment = china_time.moment_of_ms(None if ms is None else int(ms))
    return None if moment is None else moment.astimezone(CHINA)


def _unit(scene: str | None) -> str:
    found = SCENES.get(scene or "")
    return found.unit if found else ""


def _storable(text: str) -> bool:
    """Whether a text can be compared with or stored in a text column: no NUL, no lone
    surrogate (it has no UTF-8 form)."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
