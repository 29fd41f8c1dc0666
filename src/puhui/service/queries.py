"""Read side: a citizen's account, a platform's receipts, how a credit was computed (and, for
a credit a correction of its methodology restated, how it was computed again)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from puhui.bootstrap import App
from puhui.domain import china_time, subjects
from puhui.domain.errors import InputError, NotFoundError
from puhui.domain.intake import NUL
from puhui.domain.methodology import MILLI
from puhui.domain.scenes import MAX_RECORD_ID
from puhui.service.admin import check_ready


@dataclass(frozen=True, slots=True)
class AdjustedCredit:
    """One credit a `restated` movement adjusts: its own entry (the `credit` movement whose
    calculation, under both versions, `explain` shows; None for a credit released after a
    check), its record, and its methodology version and grams before the restatement and now.
    `record_id` is None where the reader may not see it."""

    entry_id: int | None
    platform: str
    record_id: str | None
    scene: str
    methodology_before: str
    methodology: str
    grams_before: int
    grams: int
    happened_at: datetime | None


@dataclass(frozen=True, slots=True)
class Adjustment:
    """What a `restated` movement adjusts: the credits of one platform in one account that a
    restatement (`puhui methodology restate`) computed again under a corrected methodology
    version. `delta_g` is their net change; what moved is less when the account held less than
    a decrease (it never goes below zero)."""

    restatement: int
    methodology_before: tuple[str, ...]
    methodology: str
    delta_g: int
    credits: tuple[AdjustedCredit, ...]


def adjustment(raw: tuple[Any, ...] | None, record_ids: bool = True) -> Adjustment | None:
    """A `restated` movement's adjustment as `Reads` gives it (None: any other movement);
    without `record_ids`, its credits' record ids left empty."""
    if raw is None:
        return None
    restatement, target, delta, platform, credits = raw
    adjusted = tuple(
        AdjustedCredit(
            entry,
            platform,
            record_id if record_ids else None,
            scene or "",
            before or "",
            now or "",
            int(grams_before),
            int(grams),
            china_time.moment_of_ms(start_ms),
        )
        for entry, record_id, scene, before, now, grams_before, grams, start_ms in credits
    )
    return Adjustment(
        int(restatement),
        tuple(sorted({c.methodology_before for c in adjusted})),
        str(target),
        int(delta),
        adjusted,
    )


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One movement of a citizen's account: `at` when it was booked, `happened` when the
    behaviour a credit is for began (None for other movements); for a `restated` movement,
    what it adjusts."""

    entry_id: int
    at: datetime
    kind: str
    amount_g: int
    platform: str
    record_id: str
    scene: str
    methodology: str
    happened: datetime | None
    adjustment: Adjustment | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    """A citizen's balance and history."""

    pseudonym: str
    balance_g: int
    history: list[HistoryLine]


def pseudonym_of(app: App, subject: str) -> str:
    """Pseudonymise an identifier the way intake does.

    Raises:
        InputError: the identifier is not a mobile number or resident ID number.
    """
    canonical = subjects.normalise(subject)
    if canonical is None:
        raise InputError("not a mainland mobile number or an 18-character resident ID number")
    return subjects.pseudonymise(app.secret, canonical)


def account(app: App, subject: str, limit: int = 50) -> AccountView:
    """Balance and latest movements of the citizen with this identifier.

    Raises:
        NotFoundError: no credit has been recorded for this citizen.
    """
    check_ready(app)
    pseudonym = pseudonym_of(app, subject)
    found = app.reads().account(pseudonym, limit)
    if found is None:
        raise NotFoundError("no account for this citizen: nothing has been credited yet")
    balance_g, lines = found
    history = [
        HistoryLine(
            int(line[0]),
            aware(line[1]),
            line[2],
            int(line[3]),
            line[4] or "",
            line[5] or "",
            line[6] or "",
            line[7] or "",
            china_time.moment_of_ms(line[8]),
            adjustment(line[9]),
        )
        for line in lines
    ]
    return AccountView(pseudonym, balance_g, history)


def receipts(app: App, platform: str) -> Iterator[dict[str, Any]]:
    """Every stored receipt of a platform, in receive order; `decided_at` (ISO 8601, UTC) when
    it ends a held record, else empty."""
    check_ready(app)
    for record_id, status, reason, grams, methodology, detail, decided in app.reads().receipts(
        platform
    ):
        yield {
            "platform": platform,
            "record_id": record_id,
            "status": status,
            "reason": reason or "",
            "reduction_g": int(grams),
            "methodology": methodology or "",
            "detail": detail or "",
            "decided_at": "" if decided is None else aware(decided).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """The receipt of one stored record, with when its batch was received and, for a record
    that was held (spec v1.1), when it was decided (None while it waits, or never held)."""

    seq: int
    platform: str
    record_id: str
    status: str
    reason: str
    reduction_g: int
    methodology: str
    detail: str
    received_at: datetime
    decided_at: datetime | None = None


def receipt(app: App, platform: str, record_id: str) -> StoredReceipt:
    """The receipt of one of a platform's records.

    Raises:
        NotFoundError: the platform has no record with this id.
    """
    found = receipts_page(app, platform, record_id=record_id, limit=1) if _an_id(record_id) else []
    if not found:
        raise NotFoundError(f"platform {platform!r} has no record {record_id!r}")
    return found[0]


def _an_id(record_id: str) -> bool:
    """Whether a record could be stored under this id: not too long, no NUL (`domain.intake`
    gives a record with such an id no key of its own)."""
    return len(record_id) <= MAX_RECORD_ID and NUL not in record_id


def receipts_page(
    app: App,
    platform: str,
    *,
    after: int = 0,
    limit: int = 100,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    record_id: str | None = None,
) -> list[StoredReceipt]:
    """A page of a platform's receipts in receive order: those after the receipt numbered
    `after`, received in [received_from, received_to) when given.

    Raises:
        NotFoundError: no such platform.
    """
    rows = app.reads().receipts_page(platform, after, limit, received_from, received_to, record_id)
    return [
        StoredReceipt(
            int(seq),
            platform,
            rid,
            status,
            reason or "",
            int(grams),
            methodology or "",
            detail or "",
            aware(received_at),
            None if decided_at is None else aware(decided_at),
        )
        for seq, rid, status, reason, grams, methodology, detail, received_at, decided_at in rows
    ]


@dataclass(frozen=True, slots=True)
class RestatedCalculation:
    """A record's calculation again under a corrected methodology version (a restatement):
    the version, the grams credited before and after it (caps re-applied), when, the grams the
    amount computes to before caps, and the calculation's trace."""

    restatement: int
    methodology: str
    grams_before: int
    grams: int
    at: datetime
    computed_g: int | None
    trace: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Explanation:
    """The full calculation of one record's credit, as received (`reduction_g`: the grams
    first credited), and each restatement of it since, oldest first (`restated`: the last one's
    grams are those it holds now)."""

    platform: str
    record_id: str
    status: str
    reason: str
    scene: str
    region: str
    material: str
    start: datetime | None
    amount: Decimal | None
    unit: str
    computed_g: int | None
    reduction_g: int
    trace: dict[str, Any] | None
    restated: tuple[RestatedCalculation, ...] = ()


def explain(app: App, platform: str, record_id: str) -> Explanation:
    """Recompute a stored record's reduction from its pinned calculation, step by step, and
    each restated calculation of it.

    Raises:
        NotFoundError: no such record.
    """
    check_ready(app)
    row = app.reads().calculation(platform, record_id) if _an_id(record_id) else None
    if row is None:
        raise NotFoundError(f"no record {record_id!r} from platform {platform!r}")
    status, reason, scene, region, material, start_ms, milli, grams, trace, unit = row
    amount = None if milli is None else Decimal(milli) * MILLI
    parsed = json.loads(trace) if trace else None
    computed = None
    if parsed is not None and amount is not None:
        computed = int(amount * Decimal(parsed["reduction_g"]) // 1)
    restated = []
    if parsed is not None:
        for r in app.restatements().of_record(platform, record_id):
            again = json.loads(r["trace"])
            restated.append(
                RestatedCalculation(
                    int(r["restatement"]),
                    str(r["methodology"]),
                    int(r["grams_before"]),
                    int(r["grams"]),
                    aware(r["at"]),
                    None if amount is None else int(amount * Decimal(again["reduction_g"]) // 1),
                    again,
                )
            )
    start = china_time.moment_of_ms(start_ms)
    return Explanation(
        platform,
        record_id,
        status,
        reason or "",
        scene or "",
        region or "",
        material or "",
        start,
        amount,
        unit or "",
        computed,
        int(grams),
        parsed,
        tuple(restated),
    )


def aware(value: datetime | str) -> datetime:
    """A timestamp read from the database, aware in UTC."""
    # Raw SQL on SQLite returns timestamps as text.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
