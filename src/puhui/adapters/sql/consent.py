"""The consent ledger on SQL (`consent_events`, appended only: the database refuses an UPDATE
or DELETE), member platforms' redirect URIs, and one-time codes by their keyed digests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from puhui.adapters.sql import accounts
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.intake import IntakeStore
from puhui.domain import consent
from puhui.domain.consent import Event


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SqlConsent:
    """Implements `service.ports.Consent` on a database engine, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # The consent ledger ------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Append an event (NotFoundError: no such platform)."""
        with self.engine.begin() as conn:
            platform_id = IntakeStore(conn).platform_id(event.platform)
            conn.execute(
                insert(t.consent_events).values(
                    grant_id=event.grant_id,
                    kind=event.kind.value,
                    subject_id=accounts.subject(conn, event.pseudonym),
                    platform_id=platform_id,
                    scopes=consent.scope_text(event.scopes) if event.kind is consent.Kind.GRANT
                    else None,
                    expires_at=event.expires_at,
                    at=event.at,
                    actor=event.actor,
                    reason=event.reason,
                )
            )  # fmt: skip

    def events(self, *, grant_id: str | None = None, pseudonym: str | None = None) -> list[Event]:
        """The events of one grant, or of one citizen's grants, in the order appended."""
        e = t.consent_events.c
        query = (
            select(e.grant_id, e.kind, t.subjects.c.pseudonym, t.platforms.c.code, e.at, e.actor,
                   e.scopes, e.expires_at, e.reason)
            .join(t.platforms, t.platforms.c.id == e.platform_id)
            .join(t.subjects, t.subjects.c.id == e.subject_id)
            .order_by(e.id)
        )  # fmt: skip
        if grant_id is not None:
            query = query.where(e.grant_id == grant_id)
        if pseudonym is not None:
            query = query.where(t.subjects.c.pseudonym == pseudonym)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Event(
                str(gid), consent.Kind(kind), str(who), str(code), _aware(at) or at, str(actor),
                frozenset(consent.Scope(s) for s in (scopes or "").split()),
                _aware(expires), reason,
            )
            for gid, kind, who, code, at, actor, scopes, expires, reason in rows
        ]  # fmt: skip

    # Redirect URIs -----------------------------------------------------------------------

    def add_redirect_uri(self, platform: str, uri: str, at: datetime) -> bool:
        """Register a redirect URI; False when the platform has it already."""
        try:
            with self.engine.begin() as conn:
                platform_id = IntakeStore(conn).platform_id(platform)
                conn.execute(
                    insert(t.redirect_uris).values(platform_id=platform_id, uri=uri, created_at=at)
                )
        except IntegrityError:
            return False
        return True

    def redirect_uris(self, platform: str) -> list[str] | None:
        """A platform's redirect URIs, oldest first; None for no such platform."""
        p, r = t.platforms.c, t.redirect_uris.c
        with self.engine.connect() as conn:
            found = conn.execute(select(p.id).where(p.code == platform)).scalar_one_or_none()
            if found is None:
                return None
            return [
                str(u)
                for u in conn.execute(
                    select(r.uri).where(r.platform_id == found).order_by(r.id)
                ).scalars()
            ]

    # Sign-in codes -----------------------------------------------------------------------

    def add_sign_in_code(
        self,
        challenge: str,
        pseudonym: str,
        digest: str,
        version: int,
        at: datetime,
        expires_at: datetime,
    ) -> None:
        """Store a code sent, by its digest."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.sign_in_codes).values(
                    challenge=challenge, pseudonym=pseudonym, code_digest=digest,
                    key_version=version, created_at=at, expires_at=expires_at,
                )
            )  # fmt: skip

    def sign_in_codes_since(self, pseudonym: str, since: datetime) -> int:
        """Codes sent to a citizen since a moment."""
        c = t.sign_in_codes.c
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(c.pseudonym == pseudonym, c.created_at >= since)
                ).scalar_one()
            )

    def try_sign_in_code(self, challenge: str, at: datetime) -> tuple[Any, ...] | None:
        """Count an attempt and read the challenge, in one transaction."""
        c = t.sign_in_codes.c
        with self.engine.begin() as conn:
            conn.execute(
                update(t.sign_in_codes)
                .where(c.challenge == challenge)
                .values(attempts=c.attempts + 1)
            )
            row = conn.execute(
                select(c.pseudonym, c.code_digest, c.key_version, c.expires_at, c.attempts,
                       c.used_at).where(c.challenge == challenge)
            ).one_or_none()  # fmt: skip
        if row is None:
            return None
        who, digest, version, expires, attempts, used = row
        return (str(who), str(digest), int(version), _aware(expires), int(attempts), _aware(used))

    def use_sign_in_code(self, challenge: str, at: datetime) -> bool:
        """Mark a code used; False when it was already."""
        c = t.sign_in_codes.c
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.sign_in_codes)
                .where(c.challenge == challenge, c.used_at.is_(None))
                .values(used_at=at)
            )
        return int(done.rowcount) == 1

    # Authorization codes -----------------------------------------------------------------

    def add_authorization_code(self, values: Mapping[str, Any]) -> None:
        """Store an authorization code."""
        row = dict(values)
        with self.engine.begin() as conn:
            row["platform_id"] = IntakeStore(conn).platform_id(row.pop("platform"))
            conn.execute(insert(t.authorization_codes).values(**row))

    def claim_authorization_code(
        self, digest: str, platform: str, at: datetime
    ) -> dict[str, Any] | None:
        """Mark a code used if it is the platform's, unused and unexpired; then its columns."""
        return self._claim(t.authorization_codes, t.authorization_codes.c.code_digest, digest,
                           platform, at)  # fmt: skip

    # Refresh tokens ----------------------------------------------------------------------

    def add_refresh_token(self, values: Mapping[str, Any]) -> None:
        """Store a refresh token by its digest."""
        row = dict(values)
        with self.engine.begin() as conn:
            row["platform_id"] = IntakeStore(conn).platform_id(row.pop("platform"))
            conn.execute(insert(t.refresh_tokens).values(**row))

    def claim_refresh_token(
        self, digest: str, platform: str, at: datetime, *, take: bool = True
    ) -> dict[str, Any] | None:
        """Mark a refresh token used (with `take`; else only read it) if it is the
        platform's, unused and unexpired; then its columns."""
        key = t.refresh_tokens.c.token_digest
        return self._claim(t.refresh_tokens, key, digest, platform, at, take=take)

    def _claim(
        self, table: Any, key: Any, digest: str, platform: str, at: datetime, *, take: bool = True
    ) -> dict[str, Any] | None:
        a, p = table.c, t.platforms.c
        owner = select(p.id).where(p.code == platform).scalar_subquery()
        usable = and_(key == digest, a.platform_id == owner, a.used_at.is_(None), a.expires_at > at)
        with self.engine.begin() as conn:
            if take:
                done = conn.execute(update(table).where(usable).values(used_at=at))
                if int(done.rowcount) != 1:
                    return None
            row = conn.execute(select(table).where(key == digest if take else usable)).first()
        if row is None:
            return None
        found = dict(row._mapping)
        for key in ("created_at", "expires_at", "used_at"):
            found[key] = _aware(found[key])
        return found
