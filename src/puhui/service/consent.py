"""Consent as use cases: a citizen signs in with a code sent to their phone, grants a member
platform some scopes until a date of their choice, lists their grants and revokes one; the
operator revokes a grant on a verified request; the operator registers where each platform's
authorizations may send the citizen back. The rules are `domain.consent`'s.

A sign-in code is six random digits sent through the SMS gateway and stored only as an HMAC
under the `consent-codes` key (with the key's version: a code made under an older version is
refused), with a challenge the browser holds; a code is valid five minutes, for five tries,
and a number gets at most a few codes an hour.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from puhui.bootstrap import App
from puhui.domain import consent, subjects
from puhui.domain.consent import Event, Grant, Kind, Scope
from puhui.domain.errors import (
    AuthenticationError,
    InputError,
    NotFoundError,
    RateLimitedError,
)
from puhui.service import citizens, queries

_CODE_CONTEXT = b"puhui sign-in code\x00"


# Grants ------------------------------------------------------------------------------------


def grant(app: App, pseudonym: str, platform: str, scopes: frozenset[Scope], days: int) -> Grant:
    """The citizen grants a platform these scopes for `days` days (one of
    `consent.EXPIRY_DAYS`).

    Raises:
        InputError: no scope, or a lifetime not offered.
        NotFoundError: no such platform.
    """
    if not scopes:
        raise InputError("a grant holds at least one scope")
    now = app.clock()
    event = Event(
        "g_" + secrets.token_hex(12), Kind.GRANT, pseudonym, platform, now, "citizen",
        frozenset(scopes), consent.expiry(now, days),
    )  # fmt: skip
    app.consent().append(event)
    return consent.fold([event])[event.grant_id]


def grants(app: App, pseudonym: str) -> list[Grant]:
    """Every grant of a citizen, newest first."""
    found = consent.fold(app.consent().events(pseudonym=pseudonym)).values()
    return sorted(found, key=lambda g: g.granted_at, reverse=True)


def find(app: App, grant_id: str) -> Grant | None:
    """A grant as its events make it now; None when there is none."""
    return consent.fold(app.consent().events(grant_id=grant_id)).get(grant_id)


def revoke(app: App, pseudonym: str, grant_id: str) -> Grant:
    """The citizen revokes one of their grants; revoking it again changes nothing.

    Raises:
        NotFoundError: no such grant of this citizen.
    """
    found = find(app, grant_id)
    if found is None or found.pseudonym != pseudonym:
        raise NotFoundError(f"no grant {grant_id} of yours")
    return _revoke(app, found, "citizen", None)


def revoke_for_operator(app: App, subject: str, grant_id: str, operator: str, reason: str) -> Grant:
    """The operator revokes a citizen's grant on the citizen's verified request.

    Raises:
        InputError: the identifier is not a mobile number or ID number, or no reason given.
        NotFoundError: no such grant of this citizen.
    """
    if not reason.strip():
        raise InputError("say why the grant is revoked (the request it answers)")
    found = find(app, grant_id)
    if found is None or found.pseudonym != queries.pseudonym_of(app, subject):
        raise NotFoundError(f"no grant {grant_id} of this citizen")
    return _revoke(app, found, f"operator:{operator}", reason.strip())


def _revoke(app: App, found: Grant, actor: str, reason: str | None) -> Grant:
    if found.revoked_at is not None:
        return found
    now = app.clock()
    event = Event(found.id, Kind.REVOKE, found.pseudonym, found.platform, now, actor, reason=reason)
    app.consent().append(event)
    return consent.fold(app.consent().events(grant_id=found.id))[found.id]


# Redirect URIs -----------------------------------------------------------------------------


def add_redirect_uri(app: App, platform: str, uri: str) -> bool:
    """Register where a platform's authorizations may send the citizen back: an https address,
    or http on this machine (for development); exactly as the platform will send it. False
    when it was registered already.

    Raises:
        InputError: not such an address, or with a fragment.
        NotFoundError: no such platform.
    """
    check_redirect_uri(uri)
    return app.consent().add_redirect_uri(platform, uri, app.clock())


def check_redirect_uri(uri: str) -> None:
    """Refuse an address no authorization may send a citizen to.

    Raises:
        InputError: not https (or http on this machine), or with a fragment.
    """
    parts = urlsplit(uri)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not (parts.scheme == "https" or (parts.scheme == "http" and local)) or not parts.netloc:
        raise InputError("a redirect URI is https://…, or http:// on 127.0.0.1 or localhost")
    if parts.fragment or len(uri) > 2000:
        raise InputError("a redirect URI has no #fragment and at most 2000 characters")


def redirect_uris(app: App, platform: str) -> list[str]:
    """A platform's redirect URIs.

    Raises:
        NotFoundError: no such platform.
    """
    found = app.consent().redirect_uris(platform)
    if found is None:
        raise NotFoundError(f"no platform {platform!r}")
    return found


# Signing in with a code --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """A code sent: the challenge to answer it under, and the number it went to, masked."""

    challenge: str
    sent_to: str
    expires_at: datetime


def send_code(app: App, phone: str) -> Challenge:
    """Send a sign-in code to a mobile number.

    Raises:
        InputError: not a mainland mobile number.
        RateLimitedError: too many codes sent to this number in the last hour.
    """
    canonical = subjects.normalise(phone)
    if canonical is None or not canonical.startswith("m:"):
        raise InputError("codes are sent to mainland mobile numbers only")
    pseudonym = subjects.pseudonymise(app.secret, canonical)
    now = app.clock()
    store = app.consent()
    if store.sign_in_codes_since(pseudonym, now - timedelta(hours=1)) >= (
        consent.CODE_SENDS_PER_HOUR
    ):
        raise RateLimitedError("too many codes were sent to this number: try again in an hour")
    code = f"{secrets.randbelow(10**consent.CODE_DIGITS):0{consent.CODE_DIGITS}d}"
    challenge = secrets.token_urlsafe(24)
    version, key = app.key("consent-codes")
    expires = now + timedelta(seconds=consent.CODE_TTL_S)
    digest = _digest(key, challenge, code)
    store.add_sign_in_code(challenge, pseudonym, digest, version, now, expires)
    minutes = consent.CODE_TTL_S // 60
    text = f"【普惠】您的登录验证码 {code}，{minutes} 分钟内有效。Your puhui sign-in code: {code}"
    app.sms().send(canonical, text, now)
    return Challenge(challenge, consent.masked(canonical), expires)


def sign_in(app: App, challenge: str, code: str) -> citizens.CitizenToken:
    """The citizen's own session, for the right code of a challenge.

    Raises:
        AuthenticationError: `bad_code` (wrong, unknown, or used), `code_expired`, or
            `too_many_attempts`.
    """
    now = app.clock()
    found = app.consent().try_sign_in_code(challenge[:64], now)
    if found is None:
        raise AuthenticationError("bad_code", "that code is not right: ask for a new one")
    pseudonym, digest, version, expires, attempts, used = found
    if attempts > consent.CODE_ATTEMPTS:
        raise AuthenticationError("too_many_attempts", "too many tries: ask for a new code")
    if used is not None:
        raise AuthenticationError("bad_code", "that code was used already: ask for a new one")
    if now >= expires:
        raise AuthenticationError("code_expired", "that code has expired: ask for a new one")
    current, key = app.key("consent-codes")
    given = code.strip()
    if version != current or not hmac.compare_digest(digest, _digest(key, challenge, given)):
        raise AuthenticationError("bad_code", "that code is not right")
    if not app.consent().use_sign_in_code(challenge, now):
        raise AuthenticationError("bad_code", "that code was used already: ask for a new one")
    return citizens.issue_session(app, pseudonym)


def _digest(key: bytes, challenge: str, code: str) -> str:
    derived = hmac.digest(key, _CODE_CONTEXT, "sha256")
    return hmac.digest(derived, f"{challenge}:{code}".encode(), "sha256").hex()


def code_digest(app: App, code: str, kind: str = "authorization-code") -> tuple[int, str]:
    """The key version and keyed digest an authorization code (or, with `kind`
    `refresh-token`, a refresh token) is stored under."""
    version, key = app.key("consent-codes")
    return version, _digest(key, kind, code)
