"""Ed25519 signatures of the ledger's checkpoints, under the `checkpoints` key's versions.

Each version of the `checkpoints` key (`adapters.keystore`) is a 32-byte secret; its Ed25519
private key is the one whose seed is SHA-256(b"puhui checkpoint\\x00" ‖ secret), so the secret
itself never signs anything else and an auditor needs only the public key
(`puhui ledger public-key`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

CONTEXT = b"puhui checkpoint\x00"


def private_key(secret: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key a `checkpoints` secret signs with."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(CONTEXT + secret).digest())


def public_key(secret: bytes) -> bytes:
    """The raw 32-byte public key of a `checkpoints` secret."""
    return (
        private_key(secret)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is the Ed25519 signature of `message` under a raw public key."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class CheckpointSigner:
    """Implements `service.ports.Signer` over the versions of the `checkpoints` key, read on
    first use (`current`: the version that signs now; `versions`: every version)."""

    def __init__(
        self,
        current: Callable[[], tuple[int, bytes]],
        versions: Callable[[], dict[int, bytes]],
    ) -> None:
        self._current = current
        self._versions = versions

    def sign(self, message: bytes) -> tuple[int, bytes]:
        """Sign with the current version: (version, 64-byte signature)."""
        version, secret = self._current()
        return version, private_key(secret).sign(message)

    def public_keys(self) -> dict[int, bytes]:
        """The raw public key of every version."""
        return {v: public_key(secret) for v, secret in sorted(self._versions().items())}

    def verify(self, version: int, message: bytes, signature: bytes) -> bool:
        """Whether a signature is that of the message under a version (False for a version
        this key file does not have)."""
        secret = self._versions().get(version)
        return secret is not None and verify(public_key(secret), message, signature)
