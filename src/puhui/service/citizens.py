"""Citizens' access: the bearer tokens that speak for a citizen, and what a citizen's account
shows through one (balance, history, how each credit was computed).

A token is either a member platform's *access token*, issued when the citizen granted that
platform some scopes (`service.consent`, `domain.consent`), naming the grant, its scopes and
the platform; or the citizen's own *session*, after signing in with a code sent to their
phone. Both name the citizen by pseudonym only, carry their expiry and the version of the
`citizen-tokens` key that signed them, and need no storage; a token signed by any version but
the current one is refused, so a rotation of that key ends every token at once. Every call
with an access token is checked against the grant as it is at that moment (`authorize`): a
revocation takes effect on the next call.

What a platform reads covers the records that came through it, or the whole account (every
platform's credits: it is one personal carbon account) with `history:all`; another platform's
own identifiers (its record ids) are shown only to that platform.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from puhui.bootstrap import App
from puhui.domain import china_time, consent
from puhui.domain.consent import Scope
from puhui.domain.errors import AuthenticationError, NotFoundError
from puhui.service import queries

_CONTEXT = b"puhui citizen token\x00"


@dataclass(frozen=True, slots=True)
class CitizenToken:
    """A bearer token for one citizen."""

    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Citizen:
    """Who a valid token speaks for: the citizen, and for an access token the platform, the
    grant and the scopes it holds (none of them for the citizen's own session)."""

    pseudonym: str
    platform: str = ""
    grant_id: str | None = None
    scopes: frozenset[Scope] = frozenset()

    @property
    def own_session(self) -> bool:
        """The citizen themself, signed in to puhui, rather than a member platform."""
        return self.grant_id is None

    def sees_all(self) -> bool:
        """Whether every platform's records show, or only this platform's."""
        return self.own_session or Scope.HISTORY_ALL in self.scopes


def issue_access_token(
    app: App, grant: consent.Grant, scopes: frozenset[Scope] | None = None
) -> CitizenToken:
    """An access token for the platform of a grant: its scopes (or fewer), valid
    `ACCESS_TOKEN_TTL_S`, never past the grant's expiry."""
    held = grant.scopes if scopes is None else scopes & grant.scopes
    now = int(app.clock().timestamp())
    expires = now + consent.token_lifetime(app.clock(), grant)
    claims = {
        "typ": "access",
        "sub": grant.pseudonym,
        "iss": grant.platform,
        "gid": grant.id,
        "scp": consent.scope_text(held),
        "exp": expires,
    }
    return CitizenToken(_sign(app, claims), datetime.fromtimestamp(expires, UTC))


def issue_session(app: App, pseudonym: str) -> CitizenToken:
    """The citizen's own session after signing in, valid `SESSION_TTL_S`."""
    expires = int(app.clock().timestamp()) + consent.SESSION_TTL_S
    claims = {"typ": "session", "sub": pseudonym, "exp": expires}
    return CitizenToken(_sign(app, claims), datetime.fromtimestamp(expires, UTC))


def verify_token(app: App, token: str) -> Citizen:
    """The citizen a token speaks for (an access token's grant is checked by `authorize`).

    Raises:
        AuthenticationError: `invalid_token` (not one of ours, altered, or signed by a key
            version no longer current) or `expired_token`.
    """
    payload, _, mac = token.partition(".")
    claims: dict[str, Any] = {}
    try:
        claims = json.loads(_unb64(payload))
        version = int(claims["kv"]) if isinstance(claims, dict) else -1
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        version = -1
    current, key = app.key("citizen-tokens")
    if version != current:
        detail = (
            "signed by a key no longer in use: sign in again"
            if version in app.keys("citizen-tokens")
            else "not a citizen token issued by this server"
        )
        raise AuthenticationError("invalid_token", detail)
    try:
        valid = hmac.compare_digest(_unb64(mac), _mac(key, payload))
    except ValueError:
        valid = False
    kind = claims.get("typ")
    needed = {"sub", "exp"} | ({"iss", "gid", "scp"} if kind == "access" else set())
    if not valid or kind not in ("access", "session") or not needed <= set(claims):
        raise AuthenticationError("invalid_token", "not a citizen token issued by this server")
    if int(claims["exp"]) <= int(app.clock().timestamp()):
        raise AuthenticationError("expired_token", "the citizen token has expired: ask for another")
    if kind == "session":
        return Citizen(str(claims["sub"]))
    scopes = frozenset(Scope(s) for s in str(claims["scp"]).split() if s in consent.SCOPES)
    return Citizen(str(claims["sub"]), str(claims["iss"]), str(claims["gid"]), scopes)


def authorize(app: App, citizen: Citizen, needed: Scope) -> None:
    """Allow a call needing a scope: the citizen's own session may do anything with the
    account; an access token only what its grant, as it is now, allows.

    Raises:
        ConsentError: `consent_required`, `grant_revoked`, `grant_expired`,
            `insufficient_scope`.
    """
    if citizen.own_session:
        return
    assert citizen.grant_id is not None
    grant = consent.fold(app.consent().events(grant_id=citizen.grant_id)).get(citizen.grant_id)
    if grant is not None and (grant.pseudonym, grant.platform) != (
        citizen.pseudonym,
        citizen.platform,
    ):
        grant = None
    consent.check(grant, citizen.scopes, needed, app.clock())


@dataclass(frozen=True, slots=True)
class Movement:
    """One line of a citizen's history, as the citizen sees it: `at` when it was booked,
    `happened_at` when the behaviour a credit is for began (None for other movements); for a
    `restated` movement, the credits it adjusts (`adjustment`)."""

    entry_id: int
    at: datetime
    kind: str
    amount: int
    unit: str
    programme: str | None
    platform: str
    scene: str
    methodology: str
    record_id: str | None
    happened_at: datetime | None
    adjustment: queries.Adjustment | None = None


def history(app: App, citizen: Citizen, before: int | None, limit: int) -> list[Movement]:
    """The citizen's movements of grams and of points, newest first, with entry ids below
    `before` when given. (Grams moved to the retired account show as the retirement taking
    them out of the citizen's grams.)"""
    top = before or 2**63 - 1
    if citizen.sees_all():
        return _movements(citizen, app.reads().history(citizen.pseudonym, top, limit))
    # Only this platform's credits: read on until a page is full or the account ends.
    found: list[Movement] = []
    while len(found) < limit:
        rows = app.reads().history(citizen.pseudonym, top, limit)
        if not rows:
            break
        found += [m for m in _movements(citizen, rows) if m.platform == citizen.platform]
        top = int(rows[-1][0])
        if len(rows) < limit:
            break
    return found[:limit]


def _movements(citizen: Citizen, rows: list[tuple[Any, ...]]) -> list[Movement]:
    return [
        Movement(
            int(entry),
            queries.aware(at),
            kind,
            int(amount),
            unit,
            account.split(":")[1] if account else None,
            code or "",
            scene or "",
            methodology or "",
            record_id if code == citizen.platform else None,
            china_time.moment_of_ms(start_ms),
            queries.adjustment(adjusts, record_ids=code == citizen.platform),
        )
        for (entry, at, kind, amount, unit, account, code, scene, methodology, record_id,
             start_ms, adjusts) in rows
    ]  # fmt: skip


def explain_credit(app: App, citizen: Citizen, entry_id: int) -> queries.Explanation:
    """How one credit of the citizen's was computed.

    Raises:
        NotFoundError: no such entry in this citizen's account.
    """
    found = app.reads().credit(citizen.pseudonym, entry_id)
    if found is None or not (citizen.sees_all() or found[0] == citizen.platform):
        raise NotFoundError(f"no credit {entry_id} in this account")
    return queries.explain(app, *found)


def _sign(app: App, claims: dict[str, Any]) -> str:
    version, key = app.key("citizen-tokens")
    payload = _b64(json.dumps({**claims, "kv": version}).encode())
    return f"{payload}.{_b64(_mac(key, payload))}"


def _mac(key: bytes, payload: str) -> bytes:
    derived = hmac.digest(key, _CONTEXT, "sha256")
    return hmac.digest(derived, payload.encode(), hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))
