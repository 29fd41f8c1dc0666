"""Accounts of the personal carbon accounts on SQL, found or opened on first use: a citizen's
(by pseudonym), their grams account, their points account in a programme, and the shared ones
(a programme's, a reward's part, what expired). The operations, the catalogue and the jobs of
`adapters/sql` open accounts only through here, within their own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, text

from puhui.adapters.sql import tables as t
from puhui.domain.errors import NotFoundError

_SUBJECT = text("insert into subjects (pseudonym) values (:p) on conflict (pseudonym) do nothing")
_CITIZEN = text(
    "insert into accounts (kind, subject_id, unit) values ('citizen', :s, 'g') "
    "on conflict (subject_id) do nothing"
)
_CODED = text(
    "insert into accounts (kind, code, owner_id, unit) values (:k, :c, :o, :u) "
    "on conflict (code) do nothing"
)


def subject(conn: Connection, pseudonym: str) -> int:
    """A citizen's id, registered if new. A write first, always: SQLite then takes its write
    lock before the transaction reads anything, so concurrent operations wait for each other
    instead of failing."""
    conn.execute(_SUBJECT, {"p": pseudonym})
    return int(
        conn.execute(
            select(t.subjects.c.id).where(t.subjects.c.pseudonym == pseudonym)
        ).scalar_one()
    )


def citizen(conn: Connection, subject_id: int, open_: bool = True) -> int | None:
    """A citizen's grams account; opened if missing, unless not `open_` (then None)."""
    found = conn.execute(
        select(t.accounts.c.id).where(t.accounts.c.subject_id == subject_id)
    ).scalar()
    if found is not None or not open_:
        return None if found is None else int(found)
    conn.execute(_CITIZEN, {"s": subject_id})
    return int(
        conn.execute(
            select(t.accounts.c.id).where(t.accounts.c.subject_id == subject_id)
        ).scalar_one()
    )


def points(conn: Connection, programme: str, subject_ids: list[int]) -> dict[int, int]:
    """The points accounts of citizens in a programme, opened where missing.

    Raises:
        NotFoundError: no such programme.
    """
    programme_row(conn, programme)
    codes = {points_code(programme, s): s for s in subject_ids}
    conn.execute(_CODED, [{"k": "points", "c": c, "o": s, "u": "pt"} for c, s in codes.items()])
    found: dict[int, int] = {}
    keys = list(codes)
    for i in range(0, len(keys), 5_000):
        for account_id, code in conn.execute(
            select(t.accounts.c.id, t.accounts.c.code).where(
                t.accounts.c.code.in_(keys[i : i + 5_000])
            )
        ).all():
            found[codes[code]] = int(account_id)
    return found


def points_code(programme: str, subject_id: int) -> str:
    """The code of a citizen's points account in a programme."""
    return f"points:{programme}:{subject_id}"


def shared(conn: Connection, kind: str, code: str, unit: str, owner: int | None = None) -> int:
    """An account known by its code (a programme's, a reward part's, a citizen's retired
    grams, what expired), opened if missing."""
    found = conn.execute(select(t.accounts.c.id).where(t.accounts.c.code == code)).scalar()
    if found is not None:
        return int(found)
    conn.execute(_CODED, {"k": kind, "c": code, "o": owner, "u": unit})
    return int(conn.execute(select(t.accounts.c.id).where(t.accounts.c.code == code)).scalar_one())


def reward_part_code(reward: str, shard: int) -> str:
    """The code of the account a part of a reward is paid into (the first part's is the
    reward's own)."""
    return f"reward:{reward}" if shard == 0 else f"reward:{reward}#{shard}"


def programme_row(conn: Connection, code: str) -> dict[str, Any]:
    """A programme's row.

    Raises:
        NotFoundError: no such programme.
    """
    row = conn.execute(select(t.programmes).where(t.programmes.c.code == code)).one_or_none()
    if row is None:
        raise NotFoundError(f"no programme {code!r}")
    return dict(row._mapping)


def balance(conn: Connection, account: int | None) -> int:
    """What an account holds (0 without an account or a balance yet)."""
    if account is None:
        return 0
    held = conn.execute(
        select(t.balances.c.balance_g).where(t.balances.c.account_id == account)
    ).scalar()
    return int(held or 0)


def lock(conn: Connection, account: int | None) -> None:
    """Hold an account's balance row until the transaction ends (PostgreSQL; SQLite has one
    writer at a time anyway)."""
    if account is not None:
        conn.execute(
            select(t.balances.c.balance_g)
            .where(t.balances.c.account_id == account)
            .with_for_update()
        ).all()
