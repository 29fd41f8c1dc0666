"""Ports: what the use cases need of storage, as protocols the adapters implement.

Intake (`service.ingest`) works through an `IntakeUnitOfWork`: one per transaction, its
`store` the reads and writes of that transaction, rolled back unless `commit` is called. The
SQL implementation is `adapters.sql.unit_of_work`; `bootstrap.App.intake` makes one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol

import pyarrow as pa

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

    def claim_nonces(self, nonces: Sequence[Nonce]) -> set[tuple[str, str]]:
        """Remember signed requests' nonces; return the (key id, nonce) pairs used before
        (or twice among these), forgetting nonces too old to come back."""
        ...

    def new_batch(self, platform_id: int, source: str, received_at: datetime) -> int:
        """Open a batch (a file, or API submissions settled together) and return its id."""
        ...

    def allocate(self, counter: str, n: int) -> int:
        """Reserve `n` consecutive numbers of a counter, held until the transaction ends, and
        return the first: the receive order of records."""
        ...

    def subject_ids(self, pseudonyms: Iterable[str]) -> pa.Table:
        """Register new pseudonyms and return the id of each one."""
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
        self, platform_id: int, stored: pa.Table, first_seq: int, last_seq: int, usage: pa.Table
    ) -> None:
        """Add a settled chunk's stored records to the statistics' tallies; `usage` is the
        chunk's `usage_day` lookup (who was credited before, in the chunk's months)."""
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
