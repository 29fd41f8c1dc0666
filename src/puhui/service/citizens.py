"""Citizens' access: short-lived tokens that member apps obtain for their logged-in users, and
what a citizen may read with one (balance, history, how each credit was computed).

A token names the citizen by pseudonym and the platform that asked for it, expires after
`TOKEN_TTL_S`, and is signed with a key derived from the server key: it needs no storage and
carries no raw identifier. What a citizen reads covers their whole account (every platform's
credits: it is one personal carbon account), but another platform's own identifiers (its
record ids) are shown only to that platform's tokens.
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
from puhui.domain import china_time
from puhui.domain.errors import AuthenticationError, NotFoundError
from puhui.service import queries

TOKEN_TTL_S = 15 * 60
_CONTEXT = b"puhui citizen token\x00"


@dataclass(frozen=True, slots=True)
class CitizenToken:
    """A bearer token for one citizen, issued to one platform."""

    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Citizen:
    """Who a valid token speaks for."""

    pseudonym: str
    platform: str


def issue_token(app: App, platform: str, subject: str) -> CitizenToken:
    """A token for the citizen with this identifier, asked for by a member platform after its
    own login.

    Raises:
        InputError: the identifier is not a mobile number or resident ID number.
        NotFoundError: no such platform.
    """
    app.directory().platform_id(platform)
    pseudonym = queries.pseudonym_of(app, subject)
    expires = int(app.clock().timestamp()) + TOKEN_TTL_S
    payload = _b64(json.dumps({"sub": pseudonym, "iss": platform, "exp": expires}).encode())
    token = f"{payload}.{_b64(_mac(app, payload))}"
    return CitizenToken(token, datetime.fromtimestamp(expires, UTC))


def verify_token(app: App, token: str) -> Citizen:
    """The citizen a token speaks for.

    Raises:
        AuthenticationError: `invalid_token` (not one of ours, or altered) or `expired_token`.
    """
    payload, _, mac = token.partition(".")
    try:
        valid = hmac.compare_digest(_unb64(mac), _mac(app, payload))
        claims: dict[str, Any] = json.loads(_unb64(payload)) if valid else {}
    except (ValueError, UnicodeDecodeError):
        valid = False
        claims = {}
    if not valid or not {"sub", "iss", "exp"} <= set(claims):
        raise AuthenticationError("invalid_token", "not a citizen token issued by this server")
    if int(claims["exp"]) <= int(app.clock().timestamp()):
        raise AuthenticationError("expired_token", "the citizen token has expired: ask for another")
    return Citizen(str(claims["sub"]), str(claims["iss"]))


@dataclass(frozen=True, slots=True)
class Movement:
    """One line of a citizen's history, as the citizen sees it: `at` when it was booked,
    `happened_at` when the behaviour a credit is for began (None for other movements)."""

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


def history(app: App, citizen: Citizen, before: int | None, limit: int) -> list[Movement]:
    """The citizen's movements of grams and of points, newest first, with entry ids below
    `before` when given. (Grams moved to the retired account show as the retirement taking
    them out of the citizen's grams.)"""
    rows = app.reads().history(citizen.pseudonym, before or 2**63 - 1, limit)
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
        )
        for (entry, at, kind, amount, unit, account, code, scene, methodology, record_id,
             start_ms) in rows
    ]  # fmt: skip


def explain_credit(app: App, citizen: Citizen, entry_id: int) -> queries.Explanation:
    """How one credit of the citizen's was computed.

    Raises:
        NotFoundError: no such entry in this citizen's account.
    """
    found = app.reads().credit(citizen.pseudonym, entry_id)
    if found is None:
        raise NotFoundError(f"no credit {entry_id} in this account")
    return queries.explain(app, *found)


def _mac(app: App, payload: str) -> bytes:
    # Only the current version signs and verifies: a rotation refuses every older token.
    key = hmac.digest(app.key("citizen-tokens")[1], _CONTEXT, "sha256")
    return hmac.digest(key, payload.encode(), hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))
