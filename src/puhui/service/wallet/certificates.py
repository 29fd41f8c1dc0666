"""Certificate ids: a retirement, or a tree planted, is certified by its operation's number and
a check keyed with the server's key, so that ids cannot be guessed and a printed one can be
verified. The id is derived, never stored: an operation's result shows it whenever it is read.
(`service/certificates.py` renders a certificate as HTML and PDF.)"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from puhui.bootstrap import App
from puhui.domain.errors import NotFoundError
from puhui.service import queries

_CERTIFICATE = b"puhui certificate\x00"
# PH-<operation>-<check>: ASCII digits (an operation id fits 64 bits) and hex.
_CERTIFICATE_ID = re.compile(r"PH-([0-9]{1,18})-[0-9A-F]{10}")


def certificate_id(app: App, operation: int, version: int | None = None) -> str:
    """The public id of the certificate of an operation, checked with the current version of
    the certificates key (or the one given)."""
    if version is None:
        version = app.key("certificates")[0]
    macs: dict[int, hmac.HMAC] = app.memo.setdefault("certificate macs", {})
    keyed = macs.get(version)
    if keyed is None:
        key = hmac.digest(app.keys("certificates")[version], _CERTIFICATE, "sha256")
        keyed = macs[version] = hmac.new(key, digestmod="sha256")
    mac = keyed.copy()  # the keyed state, made once
    mac.update(str(operation).encode())
    return f"PH-{operation:08d}-{mac.hexdigest()[:10].upper()}"


def certified(kind: str, result: dict[str, Any]) -> bool:
    """Whether an operation comes with a certificate: a retirement, a tree's redemption."""
    return kind == "retire" or (kind == "redeem" and result.get("kind") == "tree")


def with_certificate(app: App, operation: int, kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """An operation's result as people read it: with its certificate id when it has one."""
    if certified(kind, result):
        return {**result, "certificate": certificate_id(app, operation)}
    return result


@dataclass(frozen=True, slots=True)
class Certificate:
    """A retirement or tree certificate, as verified."""

    certificate: str
    kind: str
    issued_at: datetime
    result: dict[str, Any]


def verify_certificate(app: App, certificate: str) -> Certificate:
    """The certificate with this id.

    Raises:
        NotFoundError: no certificate has this id (mistyped or forged).
    """
    found = _CERTIFICATE_ID.fullmatch(certificate.strip().upper())
    if found is None:
        raise NotFoundError("no certificate has this id")
    operation = int(found.group(1))
    # A certificate printed before the key was rotated still verifies.
    if not any(
        hmac.compare_digest(certificate_id(app, operation, v).encode(), found.group(0).encode())
        for v in app.keys("certificates")
    ):
        raise NotFoundError("no certificate has this id")
    row = app.reads().operation(operation)
    if row is None:
        raise NotFoundError("no certificate has this id")
    kind, at, stored = row
    result = json.loads(stored)
    if not certified(kind, result):
        raise NotFoundError("no certificate has this id")
    # The id verified, which may have been checked with an older version of the key than the
    # one `with_certificate` uses now: the certificate reads as it was printed.
    return Certificate(
        found.group(0),
        "retirement" if kind == "retire" else "tree",
        queries.aware(at),
        {**with_certificate(app, operation, kind, result), "certificate": found.group(0)},
    )
