"""Erasure on SQL (`domain.erasure`): one transaction destroys the link from a pseudonym to
its account, deletes the behaviour details of its records and records the erasure; `scrub`
then makes the deleted bytes unrecoverable from an SQLite database's files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, text

from puhui.adapters.sql import tables as t
from puhui.domain import china_time

# The first millisecond of the behaviour's day in China time (`domain.erasure.kept_day_ms`),
# in integer arithmetic both databases share.
_DAY = f"(start_ms - ((start_ms + {china_time.OFFSET_MS}) % {china_time.DAY_MS}))"
_ERASE_DETAILS = text(
    f"update records set start_ms = {_DAY}, end_ms = case when start_ms is null then null "
    f"else {_DAY} end, extra = null, device = null, ref = null, detail = null, "
    "digest = '00000000000000000000000000000000' where subject_id = :s"
)

# Grants of the citizen not revoked yet: each gets its revocation (the consent ledger is
# appended to, never changed; its rows name the subject, which no number leads to any more).
_REVOKE_GRANTS = text(
    "insert into consent_events (grant_id, kind, subject_id, platform_id, at, actor, reason) "
    "select g.grant_id, 'revoke', g.subject_id, g.platform_id, :at, 'erasure', 'erased' "
    "from consent_events g where g.subject_id = :s and g.kind = 'grant' and not exists "
    "(select 1 from consent_events r where r.grant_id = g.grant_id and r.kind = 'revoke')"
)


class SqlErasures:
    """Implements `service.ports.Erasures` on a database engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def erase(
        self, pseudonym: str, tombstone: str, by: str, grounds: str, at: datetime
    ) -> tuple[int, int] | None:
        """Erase the citizen with a pseudonym; (erasure id, records erased), or None when no
        citizen has it."""
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            if sqlite:
                # Deleted content is overwritten with zeros, not left on free space.
                raw.execute("PRAGMA secure_delete=ON")
            try:
                with conn.begin():
                    s = t.subjects.c
                    subject = conn.execute(
                        select(s.id).where(s.pseudonym == pseudonym).with_for_update()
                    ).scalar_one_or_none()
                    if subject is None:
                        return None
                    conn.execute(
                        t.subjects.update().where(s.id == subject).values(pseudonym=tombstone)
                    )
                    erased = conn.execute(_ERASE_DETAILS, {"s": subject}).rowcount
                    # Every grant to a member platform ends; codes not yet used go.
                    conn.execute(_REVOKE_GRANTS, {"s": subject, "at": at})
                    conn.execute(
                        delete(t.sign_in_codes).where(t.sign_in_codes.c.pseudonym == pseudonym)
                    )
                    erasure = conn.execute(
                        insert(t.erasures)
                        .values(
                            subject_id=subject, at=at, by_role=by, grounds=grounds, records=erased
                        )
                        .returning(t.erasures.c.id)
                    ).scalar_one()
                    return int(erasure), int(erased)
            finally:
                if sqlite:
                    raw.execute("PRAGMA secure_delete=OFF")

    def scrub(self) -> bool | None:
        """On SQLite, copy the write-ahead log into the database and empty it, so that no
        earlier version of an erased page is left in it (False when a reader kept it from
        completing: run it again). PostgreSQL removes old row versions by vacuuming (see
        docs/privacy.md); nothing is done here."""
        if self.engine.dialect.name != "sqlite":
            return None
        with self.engine.connect() as conn:
            busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        return not busy

    def erasures(self) -> list[tuple[Any, ...]]:
        """(id, at, by, grounds, records) of every erasure, oldest first."""
        e = t.erasures.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e.id, e.at, e.by_role, e.grounds, e.records).order_by(e.id)
            ).all()
        return [tuple(r) for r in rows]
