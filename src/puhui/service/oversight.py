"""What the exchange's operators and regulators see: their API tokens, and statistics over
everything that was received.

Roles: a `regulator` reads statistics and methodologies; an `operator` also reads the member
platforms' details. Tokens are random, shown once, and stored as their SHA-256.

Statistics count stored records (a replay is not counted twice). Reductions are the grams
credited; a day is the Asia/Shanghai calendar day the behaviour started.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, text, update

from puhui.adapters.sql import tables as t
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
    (days in calendar order)."""
    day = f"(r.start_ms + {china_time.OFFSET_MS}) / {china_time.DAY_MS}"
    seconds = f"(r.start_ms + {china_time.OFFSET_MS}) / 1000"
    month = (
        f"strftime('%Y-%m', {seconds}, 'unixepoch')"
        if app.engine.dialect.name == "sqlite"
        else f"to_char(to_timestamp({seconds}) at time zone 'UTC', 'YYYY-MM')"
    )
    key = {
        Dimension.REGION: "r.region",
        Dimension.PROVINCE: "substr(r.region, 1, 2) || '0000'",
        Dimension.SCENE: "r.scene",
        Dimension.PLATFORM: "p.code",
        Dimension.DAY: day,
        Dimension.MONTH: month,
    }[by]
    order = "1" if by in (Dimension.DAY, Dimension.MONTH) else "2 desc, 1"
    where, params = _window(day_from, day_to)
    rows = _all(
        app,
        f"select {key}, sum(r.reduction_g), count(*), count(distinct r.subject_id) "
        "from records r join platforms p on p.id = r.platform_id "
        f"where r.status = 'credited' {where} group by {key} order by {order}",
        params,
    )
    return [
        ReductionRow(
            (china_time.EPOCH + timedelta(days=int(k))).isoformat()
            if by is Dimension.DAY
            else str(k),
            int(g),
            int(n),
            int(people),
        )
        for k, g, n, people in rows
    ]


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
    where, params = _window(day_from, day_to)
    [(g, n, people, platforms, received)] = _all(
        app,
        "select coalesce(sum(case when r.status = 'credited' then r.reduction_g end), 0), "
        "count(case when r.status = 'credited' then 1 end), "
        "count(distinct case when r.status = 'credited' then r.subject_id end), "
        "count(distinct case when r.status = 'credited' then r.platform_id end), count(*) "
        f"from records r where 1 = 1 {where}",
        params,
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
    where, params = _window(day_from, day_to)
    rows = _all(
        app,
        "select p.code, r.status, r.reason, count(*) from records r "
        f"join platforms p on p.id = r.platform_id where 1 = 1 {where} "
        "group by p.code, r.status, r.reason",
        params,
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
    where, params = _window(day_from, day_to)
    rows = _all(
        app,
        "select p.code, q.code, r.reason, count(*) from records r "
        "join platforms p on p.id = r.platform_id "
        "join records f on f.seq = r.duplicate_of "
        "join platforms q on q.id = f.platform_id "
        f"where r.status = 'duplicate' {where} group by p.code, q.code, r.reason "
        "order by 4 desc, 1, 2, 3",
        params,
    )
    return [PairRow(str(a), str(b), str(why), int(n)) for a, b, why, n in rows]


def _window(day_from: date | None, day_to: date | None) -> tuple[str, dict[str, int]]:
    clauses, params = "", {}
    if day_from is not None:
        clauses += " and r.start_ms >= :lo"
        params["lo"] = china_time.day_start_ms(day_from)
    if day_to is not None:
        clauses += " and r.start_ms < :hi"
        params["hi"] = china_time.day_start_ms(day_to)
    return clauses, params


def _all(app: App, sql: str, params: dict[str, int]) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params).all()]
