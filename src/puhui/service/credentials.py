"""Member platforms' API credentials: issue, rotate, and authenticate signed requests.

The scheme is `puhui.domain.signing`. A platform has one active key at a time; rotating it
revokes the old key at once. A server process remembers the keys it verified for
`KEY_MEMORY_S`, so that most signed requests read nothing to be verified; a revocation is final
where the request's nonce is claimed (`adapters.sql.nonces`), in the transaction that acts on
the request, so a revoked key is refused at once all the same.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Credentials:
    """A key id and its secret, shown once."""

    platform: str
    key_id: str
    secret: str


def issue(app: App, platform: str) -> Credentials:
    """Issue a new key for a platform, revoking any key it had.

    Raises:
        NotFoundError: no such platform.
    """
    key_id = "pk_" + secrets.token_hex(12)
    secret = signing.derive_secret(app.key("platform-secrets")[1], key_id)
    app.directory().replace_key(platform, key_id, signing.secret_digest(secret), app.clock())
    return Credentials(platform, key_id, secret)


@dataclass(frozen=True, slots=True)
class Signed:
    """A request signed by an active key of a platform; its nonce not yet claimed."""

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
    with app.intake() as uow:
        refused = uow.store.claim_nonces([signed.claim])
        if refused:
            raise refusal(signed, refused[signed.claim[:2]])
        uow.commit()
    return signed.platform


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
    app: App, method: str, path: str, headers: Mapping[str, str], body: bytes, read: bool
) -> Signed | None:
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
    active = _active_key(app, key_id, read)
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


def _active_key(app: App, key_id: str, read: bool) -> tuple[str, str] | None:
    """The platform holding an active key and the key's secret, as read at most
    `KEY_MEMORY_S` ago (None, without `read`, when it would have to be read now).

    Raises:
        AuthenticationError: `unknown_key` or `revoked_key`.
        ConfigurationError: the server key did not derive the stored key.
    """
    known: dict[str, tuple[str, str, float]] = app.memo.setdefault("active_keys", {})
    now = time.monotonic()
    remembered = known.get(key_id)
    if remembered is not None and now - remembered[2] < KEY_MEMORY_S:
        return remembered[0], remembered[1]
    if not read:
        return None
    found = app.directory().key(key_id)
    if found is None:
        raise AuthenticationError(Refusal.UNKNOWN_KEY, f"no platform holds key {key_id}")
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
