"""Fakes of the consent ports, in memory: the consent ledger as a list of events, codes in
dictionaries, and an SMS gateway that keeps what it sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from puhui.domain.consent import Event
from puhui.domain.errors import NotFoundError


@dataclass
class FakeConsent:
    """`service.ports.Consent` over lists and dictionaries."""

    platforms: set[str] = field(default_factory=lambda: {"amap", "didi"})
    ledger: list[Event] = field(default_factory=list)
    uris: dict[str, list[str]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    refreshes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def append(self, event: Event) -> None:
        if event.platform not in self.platforms:
            raise NotFoundError(f"platform {event.platform!r} is not registered")
        self.ledger.append(event)

    def events(self, *, grant_id: str | None = None, pseudonym: str | None = None) -> list[Event]:
        return [
            e
            for e in self.ledger
            if (grant_id is None or e.grant_id == grant_id)
            and (pseudonym is None or e.pseudonym == pseudonym)
        ]

    def add_redirect_uri(self, platform: str, uri: str, at: datetime) -> bool:
        known = self.uris.setdefault(platform, [])
        if uri in known:
            return False
        known.append(uri)
        return True

    def redirect_uris(self, platform: str) -> list[str] | None:
        return list(self.uris.get(platform, [])) if platform in self.platforms else None

    def add_sign_in_code(
        self,
        challenge: str,
        pseudonym: str,
        digest: str,
        version: int,
        at: datetime,
        expires_at: datetime,
    ) -> None:
        self.codes[challenge] = {"pseudonym": pseudonym, "digest": digest, "version": version,
                                 "at": at, "expires_at": expires_at, "attempts": 0,
                                 "used_at": None}  # fmt: skip

    def sign_in_codes_since(self, pseudonym: str, since: datetime) -> int:
        return sum(c["pseudonym"] == pseudonym and c["at"] >= since for c in self.codes.values())

    def try_sign_in_code(self, challenge: str, at: datetime) -> tuple[Any, ...] | None:
        c = self.codes.get(challenge)
        if c is None:
            return None
        c["attempts"] += 1
        return (c["pseudonym"], c["digest"], c["version"], c["expires_at"], c["attempts"],
                c["used_at"])  # fmt: skip

    def use_sign_in_code(self, challenge: str, at: datetime) -> bool:
        c = self.codes[challenge]
        if c["used_at"] is not None:
            return False
        c["used_at"] = at
        return True

    def add_authorization_code(self, values: Mapping[str, Any]) -> None:
        self.authorizations[values["code_digest"]] = {**values, "used_at": None}

    def claim_authorization_code(
        self, digest: str, platform: str, at: datetime
    ) -> dict[str, Any] | None:
        return _claim(self.authorizations.get(digest), platform, at, True)

    def add_refresh_token(self, values: Mapping[str, Any]) -> None:
        self.refreshes[values["token_digest"]] = {**values, "used_at": None}

    def claim_refresh_token(
        self, digest: str, platform: str, at: datetime, *, take: bool = True
    ) -> dict[str, Any] | None:
        return _claim(self.refreshes.get(digest), platform, at, take)


def _claim(
    row: dict[str, Any] | None, platform: str, at: datetime, take: bool
) -> dict[str, Any] | None:
    if row is None or row["platform"] != platform or row["used_at"] or row["expires_at"] <= at:
        return None
    if take:
        row["used_at"] = at
    return dict(row)


@dataclass
class FakeSms:
    """An SMS gateway that keeps each message: (canonical number, text)."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, canonical: str, text: str, at: datetime) -> None:
        self.sent.append((canonical, text))


@dataclass
class FakeConsentApp:
    """What the consent use cases need of `bootstrap.App`, in memory."""

    now: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    secret: bytes = b"\x02" * 32
    versions: dict[str, dict[int, bytes]] = field(default_factory=dict)
    store: FakeConsent = field(default_factory=FakeConsent)
    outbox: FakeSms = field(default_factory=FakeSms)

    def clock(self) -> datetime:
        return self.now

    def keys(self, purpose: str) -> dict[int, bytes]:
        return self.versions.setdefault(purpose, {0: bytes([len(purpose)]) * 32})

    def key(self, purpose: str) -> tuple[int, bytes]:
        found = self.keys(purpose)
        return max(found), found[max(found)]

    def rotate(self, purpose: str) -> None:
        found = self.keys(purpose)
        found[max(found) + 1] = bytes([max(found) + 100]) * 32

    def consent(self) -> FakeConsent:
        return self.store

    def sms(self) -> FakeSms:
        return self.outbox
