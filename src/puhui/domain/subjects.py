"""Citizens' identifiers: normalisation, validation and keyed pseudonyms.

A subject is a mainland mobile number or an 18-character resident ID number. It is normalised
to one canonical form (`m:13800138000`, `id:11010519491231002X`) and replaced by
HMAC-SHA256(secret, canonical form) before anything is stored. The raw identifier never leaves
the reading step.
"""

from __future__ import annotations

import hmac
import re

# ASCII digits only: `\d` would also accept full-width and other Unicode digits.
_PHONE = re.compile(r"^(?:\+?86)?(1[0-9]{10})$")
_ID = re.compile(r"^[0-9]{17}[0-9X]$")
_SEPARATORS = re.compile(r"[\s\-]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """Return the GB 11643 check character of the first 17 digits of a resident ID number.

    >>> id_check_digit("11010519491231002")
    'X'
    """
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalise(raw: str) -> str | None:
    """Return the canonical form of a subject, or None if it is malformed.

    >>> normalise("+86 138-0013 8000")
    'm:13800138000'
    >>> normalise("11010519491231002x")
    'id:11010519491231002X'
    >>> normalise("12345") is None
    True
    """
    compact = _SEPARATORS.sub("", raw).upper()
    phone = _PHONE.match(compact)
    if phone:
        return "m:" + phone.group(1)
    if _ID.match(compact) and id_check_digit(compact[:17]) == compact[17]:
        return "id:" + compact
    return None


def pseudonymise(secret: bytes, canonical: str) -> str:
    """Return the pseudonym of a canonical subject: hex HMAC-SHA256 under the platform secret."""
    return hmac.digest(secret, canonical.encode("ascii"), "sha256").hex()


def key_fingerprint(secret: bytes) -> str:
    """Return a value that identifies a secret without revealing it (kept in the database)."""
    return hmac.digest(secret, b"puhui key fingerprint v1", "sha256").hex()[:32]
