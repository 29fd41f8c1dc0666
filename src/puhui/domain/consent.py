"""Consent: what a citizen lets a member platform see and do with their personal carbon account.

A citizen *grants* a member platform some scopes until a date of their choice, and may *revoke*
the grant at any time. Grants and revocations are events, appended and never changed; a
grant's state at a moment is derived from its events and its expiry (`fold`, `Grant.state`).

    scope         what it allows
    balance       the balance and holdings (GET /v1/me, /v1/me/holdings)
    history       the movements, credits and operations that came through this platform
    history:all   every platform's movements, credits and operations
    spend         redemptions, retirements and gifts
    certify       the exchange certifies the citizen's credits into carbon units
                  (docs/market.md): their grams move into the certification pool

A platform's call is allowed when the grant its token names is active and holds the scope the
route needs (`check`); `history:all` also answers for `history`. Otherwise the refusal names
what is missing: `consent_required`, `grant_revoked`, `grant_expired` or `insufficient_scope`.

Citizens sign in with their mobile number and a one-time code sent by SMS: six digits, valid
`CODE_TTL_S`, at most `CODE_ATTEMPTS` tries, at most `CODE_SENDS_PER_HOUR` codes a number an
hour. An authorization code handed to a member app is valid `AUTHORIZATION_CODE_TTL_S`, once;
an access token `ACCESS_TOKEN_TTL_S`, never past its grant's expiry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from puhui.domain.errors import ConsentError, InputError

CODE_TTL_S = 5 * 60
CODE_ATTEMPTS = 5
CODE_SENDS_PER_HOUR = 5
CODE_DIGITS = 6
AUTHORIZATION_CODE_TTL_S = 60
ACCESS_TOKEN_TTL_S = 15 * 60
SESSION_TTL_S = 30 * 60
# The lifetimes a citizen chooses a grant's from, in days.
EXPIRY_DAYS = (30, 90, 365)


class Scope(StrEnum):
    """What a grant allows a member platform."""

    BALANCE = "balance"
    HISTORY = "history"
    HISTORY_ALL = "history:all"
    SPEND = "spend"
    CERTIFY = "certify"


# What each scope allows, as a citizen reads it on the consent page.
SCOPES: dict[Scope, str] = {
    Scope.BALANCE: "read your balance, retired grams and points",
    Scope.HISTORY: "read the movements and credits that came through this platform",
    Scope.HISTORY_ALL: "read every platform's movements and credits in your account",
    Scope.SPEND: "redeem rewards, retire grams and give grams or points for you",
    Scope.CERTIFY: (
        "let the exchange certify your credited grams into carbon units sold to companies, "
        "in exchange for its programme's points"
    ),
}


def parse_scopes(text: str | None) -> frozenset[Scope]:
    """The scopes of a space-separated list (OAuth's `scope` parameter).

    Raises:
        InputError: an unknown scope, or none.
    """
    names = (text or "").split()
    unknown = sorted(n for n in names if n not in SCOPES)
    if unknown:
        raise InputError(f"unknown scope {', '.join(unknown)}: one of {', '.join(SCOPES)}")
    if not names:
        raise InputError(f"no scope asked for: one or more of {', '.join(SCOPES)}")
    return frozenset(Scope(n) for n in names)


def scope_text(scopes: Iterable[Scope]) -> str:
    """Scopes as OAuth writes them: space-separated, in the order of `SCOPES`."""
    held = set(scopes)
    return " ".join(s.value for s in SCOPES if s in held)


def allows(scopes: Iterable[Scope], needed: Scope) -> bool:
    """Whether scopes allow what needs `needed` (`history:all` covers `history`)."""
    held = set(scopes)
    return needed in held or (needed is Scope.HISTORY and Scope.HISTORY_ALL in held)


class Kind(StrEnum):
    """What a consent event does."""

    GRANT = "grant"
    REVOKE = "revoke"


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the consent ledger. A grant event carries the scopes and the expiry; a
    revocation only names the grant it ends. `actor`: `citizen`, `operator:<name>`, or
    `erasure` (the citizen was erased)."""

    grant_id: str
    kind: Kind
    pseudonym: str
    platform: str
    at: datetime
    actor: str
    scopes: frozenset[Scope] = frozenset()
    expires_at: datetime | None = None
    reason: str | None = None


class State(StrEnum):
    """A grant's state at a moment."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant as its events make it."""

    id: str
    pseudonym: str
    platform: str
    scopes: frozenset[Scope]
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def state(self, now: datetime) -> State:
        """Revoked once a revocation is recorded; expired from its expiry on."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return State.REVOKED
        if now >= self.expires_at:
            return State.EXPIRED
        return State.ACTIVE


def fold(events: Iterable[Event]) -> dict[str, Grant]:
    """Every grant the events make, by id. A revocation of a grant the events do not hold, or
    of one already revoked, changes nothing; the first revocation counts."""
    grants: dict[str, Grant] = {}
    for e in sorted(events, key=lambda e: (e.at, e.kind is Kind.REVOKE)):
        if e.kind is Kind.GRANT and e.grant_id not in grants and e.expires_at is not None:
            grants[e.grant_id] = Grant(
                e.grant_id, e.pseudonym, e.platform, e.scopes, e.at, e.expires_at
            )
        elif e.kind is Kind.REVOKE:
            found = grants.get(e.grant_id)
            if found is not None and found.revoked_at is None:
                grants[e.grant_id] = Grant(
                    found.id, found.pseudonym, found.platform, found.scopes, found.granted_at,
                    found.expires_at, e.at, e.actor,
                )  # fmt: skip
    return grants


def check(grant: Grant | None, held: Iterable[Scope], needed: Scope, now: datetime) -> None:
    """Allow a platform's call that needs `needed`, with a token holding scopes `held` of
    `grant`; refuse it otherwise, saying what is missing.

    Raises:
        ConsentError: `consent_required`, `grant_revoked`, `grant_expired`,
            `insufficient_scope`.
    """
    if grant is None:
        raise ConsentError("consent_required", "the citizen has granted this platform nothing")
    state = grant.state(now)
    if state is State.REVOKED:
        raise ConsentError("grant_revoked", f"the citizen revoked grant {grant.id}")
    if state is State.EXPIRED:
        raise ConsentError(
            "grant_expired", f"grant {grant.id} expired at {grant.expires_at.isoformat()}"
        )
    if not (allows(held, needed) and allows(grant.scopes, needed)):
        raise ConsentError(
            "insufficient_scope",
            f"this needs the {needed} scope; the token holds {scope_text(held) or 'none'}",
        )


def expiry(granted_at: datetime, days: int) -> datetime:
    """When a grant of `days` days made at `granted_at` ends.

    Raises:
        InputError: not one of `EXPIRY_DAYS`.
    """
    if days not in EXPIRY_DAYS:
        raise InputError(f"a grant lasts {', '.join(map(str, EXPIRY_DAYS))} days, not {days}")
    return granted_at + timedelta(days=days)


def token_lifetime(now: datetime, grant: Grant) -> int:
    """Seconds an access token issued now for a grant lives: `ACCESS_TOKEN_TTL_S`, capped by
    the grant's expiry."""
    left = int((grant.expires_at - now).total_seconds())
    return max(0, min(ACCESS_TOKEN_TTL_S, left))


_MOBILE = re.compile(r"^m:(1[0-9]{2})([0-9]{4})([0-9]{4})$")


def masked(canonical: str) -> str:
    """A canonical mobile number as an SMS log may show it: `+86 189 **** 6928`.

    Raises:
        InputError: not a canonical mobile number.
    """
    m = _MOBILE.match(canonical)
    if m is None:
        raise InputError("codes are sent to mainland mobile numbers only")
    return f"+86 {m.group(1)} **** {m.group(3)}"
