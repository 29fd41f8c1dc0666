"""Ports: what the use cases need of storage, as protocols the adapters implement.

Intake (`service.ingest`) works through an `IntakeUnitOfWork`: one per transaction, its
`store` the reads and writes of that transaction, rolled back unless `commit` is called. The
SQL implementation is `adapters.sql.unit_of_work`; `bootstrap.App.intake` makes one.

The other use cases read and write through `Directory` (platforms, their keys, staff tokens,
the subject key's fingerprint), `Reads` (accounts, history, receipts, calculations), `Reports`
(statistics) and `Audit` (the ledger's invariants), each call its own transaction; `App` makes
them (`adapters.sql.directory`, `reads`, `reports`, `audit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol

import pyarrow as pa

from puhui.domain.signing import Refusal

# A calculation to store: its columns and its trace (JSON), by the key it is stored under.
Traces = dict[str, tuple[dict[str, str], str]]
# The nonce of a signed request: key id, nonce, when it was seen (epoch milliseconds).
Nonce = tuple[str, str, int]


class IntakeStore(Protocol):
    """The reads and writes of intake within one transaction. Tables in and out are Arrow,
    with the schemas of `adapters.sql.intake`."""

    def platform_id(self, code: str) -> int:
        """The id of a registered platform (NotFoundError when there is none)."""
        ...

    def claim_nonces(self, nonces: Sequence[Nonce]) -> dict[tuple[str, str], Refusal]:
        """Remember signed requests' nonces; return the (key id, nonce) pairs refused, and why:
        used before (or twice among these), or of a key revoked since; forget nonces too old
        to come back."""
        ...

    def new_batch(self, platform_id: int, source: str, received_at: datetime) -> int:
        """Open a batch (a file, or API submissions settled together) and return its id."""
        ...

    def allocate(self, counter: str, n: int) -> int:
        """Reserve `n` consecutive numbers of a counter, held until the transaction ends, and
        return the first: the receive order of records."""
        ...

    def subject_ids(self, pseudonyms: Iterable[str]) -> pa.Table:
        """Register new pseudonyms and return the id of each one (`pseudonym`, `subject_id`)
        and whether this call registered it (`registered`)."""
        ...

    def existing_records(self, platform_id: int, record_ids: Iterable[str]) -> pa.Table:
        """Stored receipts of this platform's records with these ids."""
        ...

    def existing_claims(
        self, refs: Iterable[tuple[str, str]], trips: Iterable[tuple[int, int, int]]
    ) -> pa.Table:
        """Stored claims of the same (scene, ref), or stored trips of the same citizens that
        share time with these trips (subject id, start, end)."""
        ...

    def usage_day(self, subject_ids: Iterable[int], first_ms: int, last_ms: int) -> pa.Table:
        """Credited grams and records per citizen of these, scene and China day."""
        ...

    def quantification_ids(self, traces: Traces) -> dict[str, int]:
        """Store calculations not stored yet and return the id of every one by key."""
        ...

    def write_records(self, batch_id: int, platform_id: int, rows: pa.Table) -> None:
        """Store new records with their receipts."""
        ...

    def write_conflicts(self, batch_id: int, rows: Sequence[tuple[int, str, int]]) -> None:
        """Keep refused conflicting replays (receipt seq, digest, row) for audit."""
        ...

    def write_unkeyed(self, batch_id: int, rows: Sequence[tuple[int, str | None, str]]) -> None:
        """Keep rejections that have no (platform, record_id) of their own, for audit."""
        ...

    def post_credits(self, batch_id: int, first_seq: int, last_seq: int, at: datetime) -> int:
        """Post the credit transfers of the records numbered first_seq to last_seq; their count."""
        ...

    def add_to_batch(self, batch_id: int, counts: dict[str, int], credited_g: int) -> None:
        """Add a settled chunk's counts to its batch."""
        ...

    def add_to_tallies(
        self,
        platform_id: int,
        stored: pa.Table,
        first_seq: int,
        last_seq: int,
        usage: pa.Table,
        registered: AbstractSet[int] = frozenset(),
    ) -> None:
        """Add a settled chunk's stored records to the statistics' tallies; `usage` is the
        chunk's `usage_day` lookup (who was credited before, in the chunk's months) and
        `registered` the citizens the chunk registered (counted nowhere before it)."""
        ...


class IntakeUnitOfWork(Protocol):
    """One transaction of intake: rolled back on leaving unless committed."""

    @property
    def store(self) -> IntakeStore:
        """The reads and writes of this transaction."""
        ...

    def __enter__(self) -> IntakeUnitOfWork: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the transaction's writes durable."""
        ...


class Audit(Protocol):
    """The stored ledger, read to re-check its invariants (`service.ledger.CHECKS`)."""

    def breaking(self, checks: list[str]) -> dict[str, list[str]]:
        """For each named check, what breaks its invariant (ids or keys; empty: it holds)."""
        ...

    def size(self) -> tuple[int, int, int]:
        """Accounts, transfers and the grams credited to citizens."""
        ...


class Directory(Protocol):
    """Who may do what: member platforms and their API keys, the exchange's staff tokens, and
    the fingerprint of the subject key the database was created with."""

    def key_fingerprint(self, fingerprint: str | None = None) -> str | None:
        """The stored fingerprint; with `fingerprint`, stored first if there is none."""
        ...

    def add_platform(self, code: str, name: str, at: datetime) -> None:
        """Register a platform (AlreadyExistsError when its code is taken)."""
        ...

    def platform_id(self, code: str) -> int:
        """The id of a registered platform (NotFoundError when there is none)."""
        ...

    def platforms(self) -> list[tuple[Any, ...]]:
        """(code, name, registered at, credited, duplicate, rejected, grams) of each platform."""
        ...

    def replace_key(self, platform: str, key_id: str, secret_digest: str, at: datetime) -> None:
        """Give a platform a new key and revoke the one it had, at once."""
        ...

    def key(self, key_id: str) -> tuple[str, str, datetime | None] | None:
        """(platform, secret digest, revoked at) of a key; None when unknown."""
        ...

    def add_staff_token(self, name: str, role: str, token_digest: str, at: datetime) -> None:
        """Store a staff token by its digest."""
        ...

    def revoke_staff_tokens(self, name: str, at: datetime) -> int:
        """Revoke a holder's active tokens; how many."""
        ...

    def staff(self, token_digest: str) -> tuple[str, str] | None:
        """(name, role) of the active staff token with this digest; None when none is."""
        ...


class Reads(Protocol):
    """The read side: citizens' accounts and history, platforms' receipts, and the stored
    inputs of each calculation (rows as tuples, in the order each method names)."""

    def account(self, pseudonym: str, limit: int) -> tuple[int, list[tuple[Any, ...]]] | None:
        """A citizen's grams and latest movements of grams, newest first, read together; None
        when the citizen has no account."""
        ...

    def history(self, pseudonym: str, before: int, limit: int) -> list[tuple[Any, ...]]:
        """A citizen's movements of grams and points with ids below `before`, newest first."""
        ...

    def credit(self, pseudonym: str, transfer_id: int) -> tuple[str, str] | None:
        """(platform, record id) of the record a credit to this citizen was for."""
        ...

    def receipts(self, platform: str) -> Iterator[tuple[Any, ...]]:
        """Every stored receipt of a platform, in receive order, streamed."""
        ...

    def receipts_page(
        self,
        platform: str,
        after: int,
        limit: int,
        received_from: datetime | None,
        received_to: datetime | None,
        record_id: str | None,
    ) -> list[tuple[Any, ...]]:
        """A page of a platform's receipts in receive order, after the one numbered `after`."""
        ...

    def calculation(self, platform: str, record_id: str) -> tuple[Any, ...] | None:
        """A stored record's receipt and the inputs of its calculation; None without one."""
        ...


class Reports(Protocol):
    """Regulators' statistics: from the tallies, or recounted for a window of days."""

    def reductions(
        self, by: str, day_from: date | None, day_to: date | None
    ) -> list[tuple[Any, ...]]:
        """(key, grams, records, participants) per value of a dimension."""
        ...

    def totals(self, day_from: date | None, day_to: date | None) -> tuple[Any, ...]:
        """(grams, credited records, participants, platforms that credited, records)."""
        ...

    def outcomes(self, day_from: date | None, day_to: date | None) -> list[tuple[Any, ...]]:
        """(platform, status, reasons, records) of the stored records."""
        ...

    def duplicate_pairs(self, day_from: date | None, day_to: date | None) -> list[tuple[Any, ...]]:
        """(reporting platform, platform received first, reason, records) of duplicates."""
        ...
