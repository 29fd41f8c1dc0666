"""Signed requests of member platforms: what is signed, how, and why a request is refused.

A platform holds a key id and a secret. Each request carries four headers:

    X-Puhui-Key        the key id
    X-Puhui-Timestamp  Unix time in seconds when the request was signed
    X-Puhui-Nonce      16 to 64 characters [A-Za-z0-9_-], never used twice with one key
    X-Puhui-Signature  hex HMAC-SHA256 under the secret of the string to sign

The string to sign is five lines joined by "\\n": the method in upper case, the path with its
query string exactly as sent, the timestamp, the nonce, and the hex SHA-256 of the body (of the
empty string when there is none). A request is refused when a header is missing or malformed,
the key is unknown or revoked, the timestamp is more than `MAX_SKEW_S` away from the server's
clock, the nonce was already used with that key, or the signature does not match.

Secrets are never stored. A secret is derived from the server key and the key id
(`derive_secret`), shown once when it is issued, and only its SHA-256 is kept in the database:
a copy of the database alone cannot sign a request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from enum import StrEnum

MAX_SKEW_S = 300
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
KEY_ID = re.compile(r"^pk_[0-9a-f]{24}$")
SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
# Unix seconds in ASCII digits (`str.isdigit` would take `²` and other scripts' digits).
TIMESTAMP = re.compile(r"^[0-9]{1,12}$")

HEADER_KEY = "X-Puhui-Key"
HEADER_TIMESTAMP = "X-Puhui-Timestamp"
HEADER_NONCE = "X-Puhui-Nonce"
HEADER_SIGNATURE = "X-Puhui-Signature"


class Refusal(StrEnum):
    """Why a request is not accepted as coming from a member platform."""

    UNSIGNED = "unsigned"
    MALFORMED_SIGNATURE_HEADER = "malformed_signature_header"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    STALE_TIMESTAMP = "stale_timestamp"
    REPLAYED_NONCE = "replayed_nonce"
    BAD_SIGNATURE = "bad_signature"


def derive_secret(server_key: bytes, key_id: str) -> str:
    """The secret of a key id: HMAC-SHA256 of the key id under the server key, base64url."""
    digest = hmac.digest(server_key, b"puhui platform credential\x00" + key_id.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def secret_digest(secret: str) -> str:
    """What the database keeps of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def body_digest(body: bytes) -> str:
    """Hex SHA-256 of a request body."""
    return hashlib.sha256(body).hexdigest()


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The five lines a signature covers."""
    return "\n".join((method.upper(), path, timestamp, nonce, body_digest(body))).encode()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The signature of a request, hex."""
    message = string_to_sign(method, path, timestamp, nonce, body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    key_id: str, secret: str, method: str, path: str, body: bytes, timestamp: int, nonce: str
) -> dict[str, str]:
    """The four headers of a signed request (what a platform's client sends)."""
    ts = str(timestamp)
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(secret, method, path, ts, nonce, body),
    }


DESCRIPTIONS: dict[Refusal, str] = {
    Refusal.UNSIGNED: "A signature header is missing.",
    Refusal.MALFORMED_SIGNATURE_HEADER: "A signature header is not in its documented form.",
    Refusal.UNKNOWN_KEY: "No member platform holds this key id.",
    Refusal.REVOKED_KEY: "The key id was replaced by `puhui platform rotate-key`.",
    Refusal.STALE_TIMESTAMP: f"The timestamp is more than {MAX_SKEW_S} s from the server's clock.",
    Refusal.REPLAYED_NONCE: "This nonce was already used with this key.",
    Refusal.BAD_SIGNATURE: "The signature does not match the request.",
}
