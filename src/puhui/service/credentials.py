"""API credentials of member platforms and of companies: issue, rotate, and authenticate
signed requests.

The scheme is `puhui.domain.signing`, the same for both: a key id and a secret, shown once. A
platform or a company has one active key at a time; issuing a new one revokes the old key at
once. A key acts only for its holder: a platform's key is refused on a company's routes and a
company's key on a platform's (`unknown_key`). A server process remembers the keys it verified
for `KEY_MEMORY_S`, so that most signed requests read nothing to be verified; a revocation is
final where the request's nonce is claimed (`adapters.sql.nonces`), in the transaction that acts
on the request, so a revoked key is refused at once all the same.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from puhui.bootstrap import App
from puhui.domain import signing
from puhui.domain.errors import AuthenticationError, ConfigurationError
from puhui.domain.signing import Refusal

# How long a process trusts a key it read to be active before reading it again.
KEY_MEMORY_S = 30.0

_HEADERS = (
    signing.HEADER_KEY,
    signing.HEADER_TIMESTAMP,
    signing.HEADER_NONCE,
    signing.HEADER_SIGNATURE,
)


# Whose a key is.
Holder = Literal["platform", "company"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A key id and its secret, shown once, and whose they are: a platform's code, or a
    company's unified social credit code."""

    holder: str
    key_id: str
    secret: str
    kind: Holder = "platform"


def issue(app: App, platform: str) -> Credentials:
    """Issue a new key for a platform, revoking any key it had.

    Raises:
        NotFoundError: no such platform.
    """
    key_id, secret = _new_key(app)
    app.directory().replace_key(platform, key_id, signing.secret_digest(secret), app.clock())
    return Credentials(platform, key_id, secret)


def issue_company(app: App, uscc: str) -> Credentials:
    """Issue a new key for a company, by its unified social credit code, revoking any key it
    had. The company signs its own requests with it (`/v1/company/…`): what it holds, its
    transfers and its retirements.

    Raises:
        NotFoundError: no such company.
    """
    uscc = uscc.strip().upper()
    key_id, secret = _new_key(app)
    app.directory().replace_company_key(uscc, key_id, signing.secret_digest(secret), app.clock())
    return Credentials(uscc, key_id, secret, "company")


def _new_key(app: App) -> tuple[str, str]:
    """A fresh key id and its secret, derived from the current server key."""
    key_id = "pk_" + secrets.token_hex(12)
    return key_id, signing.derive_secret(app.key("platform-secrets")[1], key_id)


@dataclass(frozen=True, slots=True)
class Signed:
    """A request signed by an active key; its nonce not yet claimed. `platform` is the code of
    the signing platform (of a company's request, the company's unified social credit
    code)."""

    platform: str
    key_id: str
    nonce: str
    seen_ms: int

    @property
    def claim(self) -> tuple[str, str, int]:
        """The nonce as `IntakeStore.claim_nonces` takes it."""
        return (self.key_id, self.nonce, self.seen_ms)


def authenticate(app: App, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
    """The code of the platform that signed a request, its nonce remembered.

    Raises:
        AuthenticationError: the request is not signed by an active key of a platform, or is
            stale or replayed (`code` says which).
    """
    signed = verify_signature(app, method, path, headers, body)
    _claim(app, signed)
    return signed.platform


def authenticate_company(
    app: App, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> str:
    """The unified social credit code of the company that signed a request, its nonce
    remembered. Only a company's own key is accepted: a platform's key is unknown here.

    Raises:
        AuthenticationError: the request is not signed by an active key of a company, or is
            stale or replayed (`code` says which).
    """
    signed = _verified(app, method, path, headers, body, read=True, holder="company")
    assert signed is not None, "read"
    _claim(app, signed)
    return signed.platform


def _claim(app: App, signed: Signed) -> None:
    """Remember a verified request's nonce in a transaction of its own."""
    with app.intake() as uow:
        refused = uow.store.claim_nonces([signed.claim])
        if refused:
            raise refusal(signed, refused[signed.claim[:2]])
        uow.commit()


def replayed(signed: Signed) -> AuthenticationError:
    """The refusal of a request whose nonce was used before."""
    return refusal(signed, Refusal.REPLAYED_NONCE)


def refusal(signed: Signed, why: Refusal) -> AuthenticationError:
    """The refusal of a verified request when its nonce is claimed: used before, or of a key
    revoked since."""
    if why is Refusal.REVOKED_KEY:
        return AuthenticationError(why, f"key {signed.key_id} was revoked")
    return AuthenticationError(
        why, f"nonce {signed.nonce} was already used with key {signed.key_id}"
    )


def verify_signature(
    app: App, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Signed:
    """Check a request's signature, key and time, reading only; the caller claims its nonce
    (`authenticate` in a transaction of its own; an API group in the group's transaction).

    Raises:
        AuthenticationError: the request is not signed by an active key of a platform, or is
            stale (`code` says which).
    """
    verified = _verified(app, method, path, headers, body, read=True)
    assert verified is not None, "read"
    return verified


def verify_remembered(
    app: App, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Signed | None:
    """`verify_signature` without reading anything: None when the request's key is not one
    this process remembers (verify it with `verify_signature` then), so that a server can
    verify most requests without waiting for a thread.

    Raises:
        AuthenticationError: as `verify_signature`.
    """
    return _verified(app, method, path, headers, body, read=False)


def _verified(
    app: App,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    read: bool,
    holder: Holder = "platform",
) -> Signed | None:
    """A request's signature checked against an active key of a `holder` (for a company's
    request, `Signed.platform` is the company's code)."""
    values = [headers.get(h) for h in _HEADERS]
    key_id, timestamp, nonce, signature = values
    if key_id is None or timestamp is None or nonce is None or signature is None:
        missing = [h for h, v in zip(_HEADERS, values, strict=True) if v is None]
        raise AuthenticationError(Refusal.UNSIGNED, f"missing {', '.join(missing)}")
    if not (
        signing.KEY_ID.match(key_id)
        and signing.TIMESTAMP.match(timestamp)
        and signing.NONCE.match(nonce)
        and signing.SIGNATURE.match(signature)
    ):
        raise AuthenticationError(
            Refusal.MALFORMED_SIGNATURE_HEADER,
            "expected a key id pk_<24 hex>, a Unix timestamp in seconds, a nonce of 16 to 64 "
            "characters [A-Za-z0-9_-] and a hex HMAC-SHA256 signature",
        )
    now_s = int(app.clock().timestamp())
    if abs(now_s - int(timestamp)) > signing.MAX_SKEW_S:
        raise AuthenticationError(
            Refusal.STALE_TIMESTAMP,
            f"timestamp {timestamp} is {now_s - int(timestamp)} s from the server's clock "
            f"(at most {signing.MAX_SKEW_S} s allowed)",
        )
    active = _active_key(app, key_id, read, holder)
    if active is None:
        return None
    code, secret = active
    expected = signing.sign(secret, method, path, timestamp, nonce, body)
    if not secrets.compare_digest(expected, signature):
        raise AuthenticationError(
            Refusal.BAD_SIGNATURE,
            "the signature does not match: sign METHOD, path with query, timestamp, nonce "
            "and the body's SHA-256, one per line",
        )
    return Signed(code, key_id, nonce, now_s * 1000)


def _active_key(app: App, key_id: str, read: bool, holder: Holder) -> tuple[str, str] | None:
    """The platform (or company) holding an active key and the key's secret, as read at most
    `KEY_MEMORY_S` ago (None, without `read`, when it would have to be read now). A key of
    the other kind of holder is unknown here.

    Raises:
        AuthenticationError: `unknown_key` or `revoked_key`.
        ConfigurationError: the server key did not derive the stored key.
    """
    memo = "active_keys" if holder == "platform" else "active_company_keys"
    known: dict[str, tuple[str, str, float]] = app.memo.setdefault(memo, {})
    now = time.monotonic()
    remembered = known.get(key_id)
    if remembered is not None and now - remembered[2] < KEY_MEMORY_S:
        return remembered[0], remembered[1]
    if not read:
        return None
    directory = app.directory()
    lookup: Callable[[str], tuple[str, str, datetime | None] | None] = (
        directory.key if holder == "platform" else directory.company_key
    )
    found = lookup(key_id)
    if found is None:
        raise AuthenticationError(Refusal.UNKNOWN_KEY, f"no {holder} holds key {key_id}")
    code, digest, revoked_at = found
    if revoked_at is not None:
        known.pop(key_id, None)
        raise AuthenticationError(Refusal.REVOKED_KEY, f"key {key_id} was revoked")
    # Issued with the current version of the platform-secrets key or, before a rotation, an
    # older one: the stored digest says which.
    for key in sorted(app.keys("platform-secrets").items(), reverse=True):
        secret = signing.derive_secret(key[1], key_id)
        if signing.secret_digest(secret) == digest:
            break
    else:
        raise ConfigurationError("the server key does not match the stored credentials")
    if len(known) > 10_000:
        known.clear()
    known[key_id] = (code, secret, now)
    return code, secret
