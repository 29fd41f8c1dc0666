"""What the exchange's operators and regulators see: their API tokens, and statistics over
everything that was received.

Roles: a `regulator` reads statistics and methodologies; an `operator` also reads the member
platforms' details. Tokens are random, shown once, and stored as their SHA-256.

Statistics count stored records (a replay is not counted twice). Reductions are the grams
credited; a day is the Asia/Shanghai calendar day the behaviour started. They are read from
the tallies settlement keeps (`adapters/sql/tallies.py`), whatever the number of records; only
a window of days on a breakdown other than by day recounts the window's records.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, text, update

from puhui.adapters.sql import tables as t
from puhui.adapters.sql import tallies
from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.domain.errors import AuthenticationError, ConfigurationError, NotFoundError


class Role(StrEnum):
    """What a staff token may read."""

    OPERATOR = "operator"
    REGULATOR = "regulator"


@dataclass(frozen=True, slots=True)
class StaffToken:
    """A token, shown once, and who holds it."""

    name: str
    role: Role
    token: str


@dataclass(frozen=True, slots=True)
class Staff:
    """Who a valid staff token speaks for."""

    name: str
    role: Role


def issue_staff_token(app: App, name: str, role: Role) -> StaffToken:
    """A new API token for a person or system of the exchange, or of a regulator.

    Raises:
        ConfigurationError: an empty name.
    """
    if not name.strip():
        raise ConfigurationError("a staff token needs the name of who holds it")
    token = "st_" + secrets.token_urlsafe(32)
    with app.engine.begin() as conn:
        conn.execute(
            insert(t.staff_tokens).values(
                name=name.strip(),
                role=role.value,
                token_digest=_digest(token),
                created_at=app.clock(),
            )
        )
    return StaffToken(name.strip(), role, token)


def revoke_staff_tokens(app: App, name: str) -> int:
    """Revoke every active token of a holder; returns how many."""
    c = t.staff_tokens.c
    with app.engine.begin() as conn:
        done = conn.execute(
            update(t.staff_tokens)
            .where(c.name == name, c.revoked_at.is_(None))
            .values(revoked_at=app.clock())
        )
    if not done.rowcount:
        raise NotFoundError(f"no active staff token held by {name!r}")
    return int(done.rowcount)


def verify_staff_token(app: App, token: str) -> Staff:
    """Who holds a token.

    Raises:
        AuthenticationError: `invalid_token` (unknown or revoked).
    """
    c = t.staff_tokens.c
    with app.engine.connect() as conn:
        row = conn.execute(
            select(c.name, c.role).where(c.token_digest == _digest(token), c.revoked_at.is_(None))
        ).one_or_none()
    if row is None:
        raise AuthenticationError("invalid_token", "not an active operator or regulator token")
    return Staff(str(row[0]), Role(row[1]))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Statistics ----------------------------------------------------------------------------------


class Dimension(StrEnum):
    """What reductions can be broken down by."""

    REGION = "region"
    PROVINCE = "province"
    SCENE = "scene"
    PLATFORM = "platform"
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class ReductionRow:
    """Credited reductions of one value of a dimension."""

    key: str
    credited_g: int
    records: int
    participants: int


def reductions(
    app: App, by: Dimension, day_from: date | None = None, day_to: date | None = None
) -> list[ReductionRow]:
    """Grams credited, credited records and distinct citizens per region, scene, platform or
    day, for behaviours that started in [day_from, day_to) (Asia/Shanghai days), largest first
    (days in calendar order).

    Read from the tallies kept at settlement, except a breakdown other than by day within a
    window of days, which recounts the window's records (distinct citizens of a window cannot
    be added up from those of its days)."""
    order = "1" if by in (Dimension.DAY, Dimension.MONTH) else "2 desc, 1"
    if by is Dimension.DAY or (day_from is None and day_to is None):
        key = "coalesce(p.code, t.key)" if by is Dimension.PLATFORM else "t.key"
        where, params = "", dict[str, object]()
        if day_from is not None:
            where += " and t.key >= :lo"
            params["lo"] = day_from.isoformat()
        if day_to is not None:
            where += " and t.key < :hi"
            params["hi"] = day_to.isoformat()
        rows = _all(
            app,
            f"select {key}, sum(t.grams), sum(t.records), sum(t.participants) from tallies t "
            f"{_PLATFORM_OF_KEY} where t.dimension = :dimension and t.status = 'credited' "
            f"{where} group by {key} order by {order}",
            {"dimension": by.value, **params},
        )
    else:
        rows = _live_reductions(app, by, day_from, day_to, order)
    return [ReductionRow(str(k), int(g), int(n), int(people)) for k, g, n, people in rows]


def _live_reductions(
    app: App, by: Dimension, day_from: date | None, day_to: date | None, order: str
) -> list[tuple[Any, ...]]:
    key = "p.code" if by is Dimension.PLATFORM else tallies.keys(app.engine.dialect.name)[by]
    where, params = _window(day_from, day_to)
    return _all(
        app,
        f"select {key}, sum(r.reduction_g), count(*), count(distinct r.subject_id) "
        "from records r join platforms p on p.id = r.platform_id "
        f"where r.status = 'credited' {where} group by {key} order by {order}",
        params,
    )


# Tallies of platforms are keyed by the platform's id.
_PLATFORM_OF_KEY = "left join platforms p on cast(p.id as varchar(12)) = t.key"


@dataclass(frozen=True, slots=True)
class Totals:
    """Everything credited, in one line."""

    credited_g: int
    records: int
    participants: int
    platforms: int
    received: int


def totals(app: App, day_from: date | None = None, day_to: date | None = None) -> Totals:
    """Grams credited, credited records, distinct citizens and platforms that credited, and
    every record received (whatever its receipt)."""
    [(g, n, people, platforms, received)] = _tallied_or_recounted(
        app,
        "select coalesce(sum(case when t.status = 'credited' then t.grams end), 0), "
        "coalesce(sum(case when t.status = 'credited' then t.records end), 0), "
        "coalesce(sum(t.participants), 0), "
        "(select count(distinct k.key) from tallies k where k.dimension = 'platform' "
        "and k.status = 'credited' and k.records > 0), coalesce(sum(t.records), 0) "
        "from tallies t where t.dimension = 'all'",
        "select coalesce(sum(case when r.status = 'credited' then r.reduction_g end), 0), "
        "count(case when r.status = 'credited' then 1 end), "
        "count(distinct case when r.status = 'credited' then r.subject_id end), "
        "count(distinct case when r.status = 'credited' then r.platform_id end), count(*) "
        "from records r where 1 = 1 {window}",
        day_from,
        day_to,
    )
    return Totals(int(g), int(n), int(people), int(platforms), int(received))


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """Records of one platform with one status and reason."""

    platform: str
    status: str
    reason: str
    records: int


def outcomes(
    app: App, day_from: date | None = None, day_to: date | None = None
) -> list[OutcomeRow]:
    """Records by platform, status and reason code (a record failing several checks counts
    once under each of its reasons; `credited` without a reason is listed with reason "")."""
    rows = _tallied_or_recounted(
        app,
        "select p.code, t.status, t.reason, t.records from tallies t "
        "join platforms p on cast(p.id as varchar(12)) = t.key "
        "where t.dimension = 'platform' and t.records > 0",
        "select p.code, r.status, r.reason, count(*) from records r "
        "join platforms p on p.id = r.platform_id where 1 = 1 {window} "
        "group by p.code, r.status, r.reason",
        day_from,
        day_to,
    )
    counts: Counter[tuple[str, str, str]] = Counter()
    for code, status, reason, n in rows:
        for one in (reason or "").split(";"):
            counts[(str(code), str(status), one)] += int(n)
    return [
        OutcomeRow(code, status, reason, n)
        for (code, status, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


@dataclass(frozen=True, slots=True)
class PairRow:
    """Duplicates one platform reported of behaviours first received from another."""

    platform: str
    first_from: str
    reason: str
    records: int


def duplicate_pairs(
    app: App, day_from: date | None = None, day_to: date | None = None
) -> list[PairRow]:
    """Who reports the same behaviours as whom: duplicates by reporting platform, the
    platform whose record was received first, and why they are the same behaviour."""
    rows = _tallied_or_recounted(
        app,
        "select p.code, q.code, t.reason, t.records from platforms p cross join platforms q "
        "join tallies t on t.key = cast(p.id as varchar(12)) || '>' "
        "|| cast(q.id as varchar(12)) where t.dimension = 'pair'",
        "select p.code, q.code, r.reason, count(*) from records r "
        "join platforms p on p.id = r.platform_id "
        "join records f on f.seq = r.duplicate_of "
        "join platforms q on q.id = f.platform_id "
        "where r.status = 'duplicate' {window} group by p.code, q.code, r.reason",
        day_from,
        day_to,
    )
    ordered = sorted(
        ((str(a), str(b), str(why), int(n)) for a, b, why, n in rows),
        key=lambda row: (-row[3], row[:3]),
    )
    return [PairRow(*row) for row in ordered]


def _tallied_or_recounted(
    app: App, tallied: str, recount: str, day_from: date | None, day_to: date | None
) -> list[tuple[Any, ...]]:
    """The rows of `tallied` without a window of days; with one, those of `recount`, whose
    `{window}` takes the window's conditions on `records r`."""
    if day_from is None and day_to is None:
        return _all(app, tallied, {})
    where, params = _window(day_from, day_to)
    return _all(app, recount.format(window=where), params)


def _window(day_from: date | None, day_to: date | None) -> tuple[str, dict[str, int]]:
    clauses, params = "", {}
    if day_from is not None:
        clauses += " and r.start_ms >= :lo"
        params["lo"] = china_time.day_start_ms(day_from)
    if day_to is not None:
        clauses += " and r.start_ms < :hi"
        params["hi"] = china_time.day_start_ms(day_to)
    return clauses, params


def _all(app: App, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params).all()]
