"""What the exchange's operators and regulators see: their API tokens, and statistics over
everything that was received.

Roles: a `regulator` reads statistics and methodologies; an `operator` also reads the member
platforms' details. Tokens are random, shown once, and stored as their SHA-256.

Statistics count stored records (a replay is not counted twice). Reductions are the grams
credited; a day is the Asia/Shanghai calendar day the behaviour started. They are read from
the tallies settlement keeps (`adapters/sql/tallies.py`), whatever the number of records; only
a window of days on a breakdown other than by day recounts the window's records (the queries:
`service.ports.Reports`, on SQL `adapters.sql.reports`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from puhui.bootstrap import App
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
    app.directory().add_staff_token(name.strip(), role.value, _digest(token), app.clock())
    return StaffToken(name.strip(), role, token)


def revoke_staff_tokens(app: App, name: str) -> int:
    """Revoke every active token of a holder; returns how many."""
    done = app.directory().revoke_staff_tokens(name, app.clock())
    if not done:
        raise NotFoundError(f"no active staff token held by {name!r}")
    return done


def verify_staff_token(app: App, token: str) -> Staff:
    """Who holds a token.

    Raises:
        AuthenticationError: `invalid_token` (unknown or revoked).
    """
    found = app.directory().staff(_digest(token))
    if found is None:
        raise AuthenticationError("invalid_token", "not an active operator or regulator token")
    return Staff(found[0], Role(found[1]))


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
    rows = app.reports().reductions(by.value, day_from, day_to)
    return [ReductionRow(str(k), int(g), int(n), int(people)) for k, g, n, people in rows]


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
    g, n, people, platforms, received = app.reports().totals(day_from, day_to)
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
    counts: Counter[tuple[str, str, str]] = Counter()
    for code, status, reason, n in app.reports().outcomes(day_from, day_to):
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
    ordered = sorted(
        (
            (str(a), str(b), str(why), int(n))
            for a, b, why, n in app.reports().duplicate_pairs(day_from, day_to)
        ),
        key=lambda row: (-row[3], row[:3]),
    )
    return [PairRow(*row) for row in ordered]
