"""The ledger's hash chain on SQL: the sealer, the signed checkpoints, and the checks of
`ledger verify` that re-hash what was sealed (`domain.chain` states the encoding and the chain;
docs/ledger.md says it for auditors).

The sealer links commits in the order it seals them, never making writers wait for it: under
one lock (a transaction-scoped advisory lock on PostgreSQL, the write lock on SQLite) it takes
every committed commit not sealed yet, in id order, hashes its transfers and appends one
position per commit. A commit still being written when the sealer looks is invisible to it and
sealed by a later run, at a later position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Connection, CursorResult, Engine, insert, select, text

from puhui.adapters.sql import tables as t
from puhui.domain import chain as rules


class Signer(Protocol):
    """What the checks need of `service.ports.Signer`: a checkpoint's signature verified."""

    def verify(self, version: int, message: bytes, signature: bytes) -> bool:
        """Whether a signature is that of the message under a key version."""
        ...


# One advisory lock, taken by each sealing transaction on PostgreSQL ("puhuiCHN").
SEAL_LOCK = 0x7075687569434E
# Commits sealed per statement that reads their transfers.
SEAL_BATCH = 500
# Transfers fetched at a time when re-hashing.
FETCH = 10_000
# A quick seal on PostgreSQL looks for unsealed commits among the ids above the last sealed one
# less this many: a transaction that drew its commit id before so many others committed is
# left to the next full seal.
RECENT = 10_000

_TRANSFERS = f"select {', '.join(rules.TRANSFER_COLUMNS)} from transfers"
_TIMES = tuple(rules.TRANSFER_COLUMNS.index(c) for c in ("created_at", "expires_at"))
_COMMIT = rules.TRANSFER_COLUMNS.index("commit_id")
_LAST_SEALED = "select max(commit_id) from ledger_chain"
_UNSEALED = (
    "from ledger_commits c where not exists (select 1 from ledger_chain h where h.commit_id = c.id)"
)


class SqlChain:
    """Implements `service.ports.LedgerChain` on a database engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def seal(self, everything: bool = True) -> int:
        """Seal the committed commits not sealed yet; returns how many were sealed.

        With `everything`, every one: `ledger_commits` is compared with the chain whole. A
        quick seal looks only above the last commit sealed: on SQLite, whose writers commit
        one at a time in id order, that is every one all the same; on PostgreSQL, whose
        writers draw ids before they commit, it looks from `RECENT` ids below it, and leaves a
        commit older than that to the next full seal.
        """
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if sqlite:
                # The write lock first: a transaction that read before writing could find
                # another sealer's positions taken when it writes.
                conn.exec_driver_sql("begin immediate")
            else:
                conn.execute(text("select pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
            position, head = _head(conn)
            previous = bytes.fromhex(head)
            unsealed = f"select c.id {_UNSEALED}"
            last = None if everything else conn.execute(text(_LAST_SEALED)).scalar()
            if last is not None:
                unsealed += f" and c.id > {int(last) - (0 if sqlite else RECENT)}"
            commits = [int(c) for c in conn.execute(text(unsealed + " order by c.id")).scalars()]
            for start in range(0, len(commits), SEAL_BATCH):
                batch = commits[start : start + SEAL_BATCH]
                digests = digests_of(conn, batch)
                rows = []
                for commit in batch:
                    digest = digests.get(commit, rules.commit_digest(()))
                    position += 1
                    previous = rules.link(previous, position, commit, digest)
                    rows.append(
                        {
                            "position": position,
                            "commit_id": commit,
                            "digest": digest.hex(),
                            "chain": previous.hex(),
                        }
                    )
                conn.execute(insert(t.ledger_chain), rows)
            conn.commit()
        return len(commits)

    def head(self) -> tuple[int, str]:
        """The last position sealed and its chain value (0 and 64 zeros: nothing sealed)."""
        with self.engine.connect() as conn:
            return _head(conn)

    def chain_at(self, position: int) -> str | None:
        """The chain value stored at a position (64 zeros at 0), or None past the head."""
        if position == 0:
            return rules.GENESIS.hex()
        with self.engine.connect() as conn:
            found = conn.execute(
                select(t.ledger_chain.c.chain).where(t.ledger_chain.c.position == position)
            ).scalar()
        return None if found is None else str(found)

    def unsealed(self) -> int:
        """How many committed commits are not sealed yet."""
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"select count(*) {_UNSEALED}")).scalar_one())

    def add_checkpoint(
        self, position: int, chain: str, at: datetime, key_version: int, signature: str
    ) -> int:
        """Store a signed checkpoint; returns its id."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(t.ledger_checkpoints)
                    .values(
                        position=position,
                        chain=chain,
                        at=at,
                        key_version=key_version,
                        signature=signature,
                    )
                    .returning(t.ledger_checkpoints.c.id)
                ).scalar_one()
            )


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(
        select(t.ledger_chain.c.position, t.ledger_chain.c.chain)
        .order_by(t.ledger_chain.c.position.desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, rules.GENESIS.hex()
    return int(row[0]), str(row[1])


def digests_of(conn: Connection, commits: Sequence[int]) -> dict[int, bytes]:
    """The digest of each of these commits that has transfers."""
    digests = rules.Digests()
    listed = ", ".join(str(int(c)) for c in commits)
    with _transfers(conn, f"commit_id in ({listed})") as rows:
        for row in rows:
            digests.add(int(row[_COMMIT]), _as_stored(row))
    return digests.done()


def _transfers(conn: Connection, where: str) -> CursorResult[Any]:
    """The transfers that satisfy `where`, every column in the encoding's order, by commit
    and id, fetched in batches on the driver: a ledger has millions, and SQLAlchemy's work on
    each row would cost more than hashing it."""
    return conn.exec_driver_sql(
        f"{_TRANSFERS} where {where} order by commit_id, id",
        execution_options={"yield_per": FETCH},
    )


def _as_stored(row: Sequence[Any]) -> tuple[rules.Value, ...]:
    """A transfer's values as the encoding takes them: SQLite gives its times as the text it
    stores (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC), read here as times."""
    values = list(row)
    for i in _TIMES:
        if isinstance(values[i], str):
            values[i] = _stored_time(values[i])
    return tuple(values)


@lru_cache(maxsize=4096)
def _stored_time(stored: str) -> datetime | str:
    """A time stored as text; a text that is no time stays text (and is hashed as such)."""
    try:
        return datetime.fromisoformat(stored)
    except ValueError:
        return stored


# The checks of `ledger verify` computed in Python (SQL cannot hash portably) --------------------


@dataclass(frozen=True, slots=True)
class Rehashed:
    """A check that re-hashes stored rows: `judge` names each row breaking the invariant,
    verifying signatures with the signer of the checkpoints' keys."""

    judge: Callable[[Connection, Signer | None], Iterator[str]]


UNCOMMITTED = (
    "select cast(x.id as varchar(20)) from transfers x "
    "left join ledger_commits c on c.id = x.commit_id where c.id is null"
)


def altered_commits(conn: Connection, _signer: Signer | None) -> Iterator[str]:
    """Sealed commits whose transfers no longer give their digest (an edited, inserted,
    deleted or moved transfer). The sealed commits and the transfers are both read in commit
    order and compared as they come, so memory does not grow with the ledger."""
    h = t.ledger_chain.c
    sealed = conn.execute(
        select(h.commit_id, h.digest).order_by(h.commit_id).execution_options(yield_per=FETCH)
    )
    transfers = _transfers(conn, "commit_id is not null")
    with sealed, transfers:
        rows = iter(transfers)
        pending = next(rows, None)
        for commit, digest in sealed:
            while pending is not None and pending[_COMMIT] < commit:  # an unsealed commit's
                pending = next(rows, None)
            lines = hashlib.sha256()
            while pending is not None and pending[_COMMIT] == commit:
                lines.update(rules.transfer_line(_as_stored(pending)))
                pending = next(rows, None)
            if lines.hexdigest() != digest:
                yield str(commit)


def broken_chain(conn: Connection, _signer: Signer | None) -> Iterator[str]:
    """Positions of the chain that do not follow from the one before, or seal a commit that
    does not exist."""
    h = t.ledger_chain.c
    links = (
        rules.Link(int(p), int(c), str(d), str(v))
        for p, c, d, v in conn.execute(
            select(h.position, h.commit_id, h.digest, h.chain)
            .order_by(h.position)
            .execution_options(yield_per=FETCH)
        )
    )
    broken = set(rules.broken_links(links))
    broken |= {
        int(p)
        for p in conn.execute(
            text(
                "select h.position from ledger_chain h "
                "left join ledger_commits c on c.id = h.commit_id where c.id is null"
            )
        ).scalars()
    }
    for position in sorted(broken):
        yield str(position)


def invalid_checkpoints(conn: Connection, signer: Signer | None) -> Iterator[str]:
    """Checkpoints whose signature fails, or whose chain value is not the chain at their
    position."""
    k, h = t.ledger_checkpoints.c, t.ledger_chain.c
    for row in conn.execute(
        select(k.id, k.position, k.chain, k.at, k.key_version, k.signature, h.chain.label("at_p"))
        .select_from(t.ledger_checkpoints.outerjoin(t.ledger_chain, h.position == k.position))
        .order_by(k.id)
    ):
        stored = rules.GENESIS.hex() if row.position == 0 else row.at_p
        if not checkpoint_holds(
            signer, stored, row.position, row.chain, row.at, row.key_version, row.signature
        ):
            yield str(row.id)


def checkpoint_holds(
    signer: Signer | None,
    stored_chain: str | None,
    position: int,
    chain: str,
    at: datetime,
    key_version: int,
    signature: str,
) -> bool:
    """Whether a checkpoint names the chain stored at its position and its signature is that
    of its key version over (position, chain, time)."""
    if signer is None or stored_chain is None or stored_chain != chain:
        return False
    try:
        message = rules.checkpoint_message(int(position), chain, at)
        return signer.verify(int(key_version), message, bytes.fromhex(signature))
    except (ValueError, rules.ChainError):
        return False
