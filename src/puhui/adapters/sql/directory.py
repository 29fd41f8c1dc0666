"""Who may do what, on SQL: member platforms and companies and their API keys, the exchange's
staff tokens, and the fingerprint of the subject key a database was created with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, String, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from puhui.adapters.sql import tables as t
from puhui.adapters.sql.intake import IntakeStore
from puhui.domain.errors import AlreadyExistsError, NotFoundError


class SqlDirectory:
    """Implements `service.ports.Directory` on a database engine, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # The subject key ---------------------------------------------------------------------

    def key_fingerprint(self, fingerprint: str | None = None) -> str | None:
        """The fingerprint of the database's subject key; with `fingerprint`, stored first if
        there is none yet."""
        m = t.meta.c
        with self.engine.begin() as conn:
            stored = conn.execute(
                select(m.value).where(m.key == "key_fingerprint")
            ).scalar_one_or_none()
            if stored is None and fingerprint is not None:
                conn.execute(insert(t.meta).values(key="key_fingerprint", value=fingerprint))
                return fingerprint
        return None if stored is None else str(stored)

    # Member platforms and their keys -------------------------------------------------------

    def add_platform(self, code: str, name: str, at: datetime) -> None:
        """Register a platform (AlreadyExistsError when its code is taken)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.platforms).values(code=code, name=name, created_at=at))
        except IntegrityError:
            raise AlreadyExistsError(f"platform {code!r} is already registered") from None

    def platform_id(self, code: str) -> int:
        """The id of a registered platform (NotFoundError when there is none)."""
        with self.engine.connect() as conn:
            return IntakeStore(conn).platform_id(code)

    def platform_name(self, code: str) -> str | None:
        """The display name of a registered platform; None when there is none."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(t.platforms.c.name).where(t.platforms.c.code == code)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def platforms(self) -> list[tuple[Any, ...]]:
        """(code, name, registered at, credited, duplicate, rejected records, grams credited)
        of every platform, by code, from the tallies."""
        k = t.tallies.c
        p = t.platforms.c
        per_platform = (
            select(
                k.key,
                func.sum(k.records).filter(k.status == "credited").label("credited"),
                func.sum(k.records).filter(k.status == "duplicate").label("duplicate"),
                func.sum(k.records).filter(k.status == "rejected").label("rejected"),
                func.coalesce(func.sum(k.grams).filter(k.status == "credited"), 0).label(
                    "credited_g"
                ),
            )
            .where(k.dimension == "platform")
            .group_by(k.key)
            .subquery()
        )
        s = per_platform.c
        query = (
            select(
                p.code,
                p.name,
                p.created_at,
                func.coalesce(s.credited, 0),
                func.coalesce(s.duplicate, 0),
                func.coalesce(s.rejected, 0),
                func.coalesce(s.credited_g, 0),
            )
            .select_from(t.platforms.outerjoin(per_platform, s.key == cast(p.id, String(12))))
            .order_by(p.code)
        )
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query).all()]

    def replace_key(self, platform: str, key_id: str, secret_digest: str, at: datetime) -> None:
        """Give a platform a new key, revoking the one it had, in one transaction
        (NotFoundError: no such platform)."""
        c = t.credentials.c
        with self.engine.begin() as conn:
            platform_id = IntakeStore(conn).platform_id(platform)
            conn.execute(
                update(t.credentials)
                .where(c.platform_id == platform_id, c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            conn.execute(
                insert(t.credentials).values(
                    platform_id=platform_id,
                    key_id=key_id,
                    secret_digest=secret_digest,
                    created_at=at,
                )
            )

    def key(self, key_id: str) -> tuple[str, str, datetime | None] | None:
        """(platform code, secret digest, revoked at) of a key, None when unknown."""
        c = t.credentials.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.platforms.c.code, c.secret_digest, c.revoked_at)
                .join(t.platforms, t.platforms.c.id == c.platform_id)
                .where(c.key_id == key_id)
            ).one_or_none()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    # Companies' keys ---------------------------------------------------------------------

    def replace_company_key(self, uscc: str, key_id: str, secret_digest: str, at: datetime) -> None:
        """Give a company a new key, revoking the one it had, in one transaction
        (NotFoundError: no such company)."""
        c = t.credentials.c
        with self.engine.begin() as conn:
            company_id = conn.execute(
                select(t.companies.c.id).where(t.companies.c.uscc == uscc)
            ).scalar_one_or_none()
            if company_id is None:
                raise NotFoundError(f"no company {uscc}")
            conn.execute(
                update(t.credentials)
                .where(c.company_id == company_id, c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            conn.execute(
                insert(t.credentials).values(
                    company_id=company_id,
                    key_id=key_id,
                    secret_digest=secret_digest,
                    created_at=at,
                )
            )

    def company_key(self, key_id: str) -> tuple[str, str, datetime | None] | None:
        """(company's unified social credit code, secret digest, revoked at) of a key, None
        when no company holds it."""
        c = t.credentials.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.companies.c.uscc, c.secret_digest, c.revoked_at)
                .join(t.companies, t.companies.c.id == c.company_id)
                .where(c.key_id == key_id)
            ).one_or_none()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    # Staff tokens ------------------------------------------------------------------------

    def add_staff_token(self, name: str, role: str, token_digest: str, at: datetime) -> None:
        """Store a staff token by its digest."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.staff_tokens).values(
                    name=name, role=role, token_digest=token_digest, created_at=at
                )
            )

    def revoke_staff_tokens(self, name: str, at: datetime) -> int:
        """Revoke every active token of a holder; how many there were."""
        c = t.staff_tokens.c
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.staff_tokens)
                .where(c.name == name, c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return int(done.rowcount)

    def staff(self, token_digest: str) -> tuple[str, str] | None:
        """(name, role) of the active staff token with this digest, None when there is none."""
        c = t.staff_tokens.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(c.name, c.role).where(c.token_digest == token_digest, c.revoked_at.is_(None))
            ).one_or_none()
        return None if row is None else (str(row[0]), str(row[1]))
