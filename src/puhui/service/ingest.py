"""Ingest: platform files in, receipts and credits out.

The data flows one way, chunk by chunk, so a file of any size is never held whole:
read → validate, normalise, pseudonymise, quantify (`adapters.batch.prepare`: DuckDB for large
chunks, Arrow kernels for some thousands of records, the statement `domain.intake` for small
chunks) → look up what the database already knows of the chunk's keys → settle
(`adapters.batch.settle` in DuckDB, or the statement `domain.settlement` for small chunks) →
store records, receipts, one ledger transfer per credit and the statistics' tallies in one unit
of work (`service.ports`) → write receipts out.
A chunk commits as a whole or not at all; re-running a file after a failure replays what was
committed and settles the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from puhui.adapters.batch import signals
from puhui.adapters.batch.prepare import Preparer, calculation_row, epoch_ms
from puhui.adapters.batch.reader import DEFAULT_CHUNK, read_chunks, records_table
from puhui.adapters.batch.sequential import settle_small
from puhui.adapters.batch.settle import settle
from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.domain.errors import InputError
from puhui.domain.reasons import Status
from puhui.domain.scenes import MAX_RECORD_ID
from puhui.domain.settlement import Role
from puhui.domain.signing import Refusal
from puhui.service import ledger, review
from puhui.service.pipeline import Pipeline
from puhui.service.ports import IntakeStore, Nonce

T = TypeVar("T")

RECEIPT_FIELDS = ("platform", "record_id", "status", "reason", "reduction_g", "methodology")


@dataclass
class IngestReport:
    """What an ingest did: receipts by status and reason (replays included, as their receipts
    are returned again), and the grams and ledger transfers this ingest newly credited."""

    records: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    credited_g: int = 0
    transfers: int = 0
    replays: int = 0
    batches: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of a block to a stage's total."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def add(self, receipts: pa.Table, transfers: int, replays: int, credited_g: int) -> None:
        """Count one settled chunk."""
        self.records += receipts.num_rows
        self.replays += replays
        self.transfers += transfers
        self.credited_g += credited_g
        self.by_status.update(receipts.column("status").to_pylist())
        for reason in receipts.column("reason").to_pylist():
            if reason:
                self.by_reason.update(reason.split(";"))


ReceiptSink = Callable[[pa.Table], None]
Progress = Callable[[int], None]


def ingest_files(
    app: App,
    platform: str,
    paths: Iterable[Path],
    sink: ReceiptSink | None = None,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK,
) -> IngestReport:
    """Ingest files of one member platform, in the order given.

    Args:
        app: the application.
        platform: code of the submitting platform; records naming another are rejected.
        paths: JSON Lines, CSV or Parquet files.
        sink: called with each chunk's receipts (columns RECEIPT_FIELDS plus `row`, `detail`,
            `file`, and `settled_now`: false for a replay or conflict answered with an earlier
            receipt), in file order.
        progress: called with the number of records of each chunk settled.
        chunk_size: records per transaction.

    Afterwards, whether it ended well or not, the ledger commits of its chunks are sealed
    into the hash chain (`service.ledger.seal`, best effort).
    """
    sources = ((path.name, read_chunks(path, chunk_size)) for path in paths)
    try:
        return ingest_sources(app, platform, sources, sink, progress)
    finally:
        ledger.seal_quietly(app)


def ingest_records(
    app: App,
    platform: str,
    records: Sequence[object],
    source: str = "api",
    pipeline: Pipeline | None = None,
    nonces: Sequence[Nonce] = (),
) -> tuple[IngestReport, pa.Table]:
    """Ingest records already parsed from JSON (API submissions) as one batch, in one
    transaction, and return the report with the receipts in the order of the records.
    `nonces` (key id, nonce, when seen in epoch ms) of the signed requests that carried them
    are claimed in the same transaction.

    Raises:
        InputError: no records.
        RefusedNonces: a nonce was used before, or its key revoked since (nothing was
            stored).
    """
    if not records:
        raise InputError("a submission holds at least one record")
    collected: list[pa.Table] = []
    report = ingest_sources(
        app,
        platform,
        [(source, iter([records_table(records)]))],
        sink=collected.append,
        pipeline=pipeline,
        nonces=nonces,
        ahead=False,
    )
    return report, pa.concat_tables(collected)


def ingest_sources(
    app: App,
    platform: str,
    sources: Iterable[tuple[str, Iterator[pa.Table]]],
    sink: ReceiptSink | None = None,
    progress: Progress | None = None,
    pipeline: Pipeline | None = None,
    nonces: Sequence[Nonce] = (),
    ahead: bool = True,
) -> IngestReport:
    """Ingest named streams of raw chunks (one batch each) of one member platform, in order,
    on a warm pipeline if one is given. With `ahead`, the next chunk is read and prepared on
    the pipeline's thread while the current one settles; without (a single chunk already in
    memory, as an API group is), on the caller's thread.

    A source's batch is opened in the transaction of its first chunk: a source that fails
    before any chunk is stored leaves no batch behind. `nonces` are the signed requests'
    nonces of an API group, claimed in that same transaction (`RefusedNonces` if any was
    used before, or its key revoked since: then nothing is stored)."""
    if pipeline is None:
        own = Pipeline(app)
        try:
            return ingest_sources(app, platform, sources, sink, progress, own, nonces, ahead)
        finally:
            own.close()
    pipeline.check_ready()
    report = IngestReport()
    preparer = pipeline.preparer(platform)
    pending: Future[tuple[pa.Table, pa.Table] | None] | None = None
    try:
        for name, chunks in sources:
            received_at = app.clock()
            batch_id: int | None = None

            def next_chunk(
                chunks: Iterator[pa.Table] = chunks, received_at: datetime = received_at
            ) -> tuple[pa.Table, pa.Table] | None:
                with report.timed("read"):
                    raw = next(chunks, None)
                if raw is None:
                    return None
                with report.timed("prepare"):
                    return raw, preparer.prepare(raw, epoch_ms(received_at))

            pending = _begin(pipeline, next_chunk, ahead)
            while True:
                with report.timed("wait for prepare"):
                    ready = pending.result()
                if ready is None:
                    break
                raw, prepared = ready
                pending = _begin(pipeline, next_chunk, ahead)
                # One unit of work a chunk: it commits whole or not at all.
                with app.intake() as uow:
                    platform_id = pipeline.platform_id(uow.store, platform)
                    if batch_id is None:
                        if nonces:
                            refused = uow.store.claim_nonces(nonces)
                            if refused:
                                raise RefusedNonces(refused)
                        batch_id = uow.store.new_batch(platform_id, name, received_at)
                    settled, transfers, credited_g = _settle_chunk(
                        uow.store,
                        preparer,
                        pipeline,
                        prepared,
                        platform_id,
                        batch_id,
                        received_at,
                        report,
                    )
                    with report.timed("commit"):
                        uow.commit()
                pipeline.quantification_ids |= pipeline.stored_quantifications
                if not report.batches or report.batches[-1] != batch_id:
                    report.batches.append(batch_id)
                with report.timed("receipts"):
                    receipts = receipts_of(settled, platform, name)
                    roles = settled.column("role")
                    replays = pc.sum(pc.equal(roles, pa.scalar(Role.REPLAY.value))).as_py()
                    report.add(receipts, transfers, int(replays or 0), credited_g)
                if sink is not None:
                    with report.timed("receipts"):
                        sink(receipts)
                if progress is not None:
                    progress(raw.num_rows)
            if batch_id is None:
                # A source without records still has its (empty) batch.
                with app.intake() as uow:
                    batch_id = uow.store.new_batch(
                        pipeline.platform_id(uow.store, platform), name, received_at
                    )
                    uow.commit()
                report.batches.append(batch_id)
    finally:
        # A failed chunk leaves the next one reading or preparing: let it finish before the
        # pipeline is used again.
        if pending is not None:
            pending.cancel()
            with suppress(Exception, CancelledError):
                pending.result()
    return report


def _begin(pipeline: Pipeline, step: Callable[[], T], ahead: bool) -> Future[T]:
    """Run a step on the pipeline's thread (`ahead`) or now, on this one."""
    if ahead:
        return pipeline.pool.submit(step)
    done: Future[T] = Future()
    try:
        done.set_result(step())
    except Exception as error:
        done.set_exception(error)
    return done


class RefusedNonces(Exception):
    """Signed requests of a group whose nonces were used before, or whose keys were revoked
    since they were verified: the group stored nothing. `refused`: why, by (key id, nonce)."""

    def __init__(self, refused: dict[tuple[str, str], Refusal]) -> None:
        super().__init__(f"{len(refused)} signed request(s) refused")
        self.refused = refused


def _settle_chunk(
    store: IntakeStore,
    preparer: Preparer,
    pipeline: Pipeline,
    prepared: pa.Table,
    platform_id: int,
    batch_id: int,
    received_at: datetime,
    report: IngestReport,
) -> tuple[pa.Table, int, int]:
    with report.timed("lookup"):
        prepared, first_seq, subject_ids, existing, claims, usage = _lookups(
            store, prepared, platform_id
        )
    with report.timed("settle"):
        if prepared.num_rows <= pipeline.small_chunk:
            settled = settle_small(prepared, subject_ids, existing, claims, usage, platform_id)
        else:
            settled = settle(pipeline.settler, prepared, subject_ids, existing, claims, usage)
    transfers, credited_g, settled = post_chunk(
        store,
        preparer,
        pipeline,
        settled,
        Posting(platform_id, batch_id, received_at, first_seq),
        subject_ids,
        usage,
        report,
    )
    return settled, transfers, credited_g


@dataclass(frozen=True)
class Posting:
    """Where a settled chunk is posted: its platform, its batch, when it was received and the
    seq of its first record."""

    platform_id: int
    batch_id: int
    received_at: datetime
    first_seq: int


def post_chunk(
    store: IntakeStore,
    preparer: Preparer,
    pipeline: Pipeline,
    settled: pa.Table,
    posting: Posting,
    subject_ids: pa.Table,
    usage: pa.Table,
    report: IngestReport,
) -> tuple[int, int, pa.Table]:
    """Review a settled chunk (held records, spec v1.1), store it (its records numbered from
    `posting.first_seq`), post its credits and holds, credit the held records it corroborates,
    count it in its batch and the statistics' tallies; returns the transfers posted, the grams
    credited and the chunk's receipts as reviewed. `usage`: the chunk's `usage_day` lookup."""
    platform_id, batch_id = posting.platform_id, posting.batch_id
    with report.timed("review"):
        reviewed = review.review_chunk(
            store,
            pipeline.settler,
            pipeline.app.evidence,
            settled,
            pipeline.platform_code(platform_id),
            platform_id,
            posting.received_at,
        )
        settled = reviewed.settled
    with report.timed("store"):
        stored = _store(store, pipeline, preparer, settled, platform_id, batch_id)
        store.write_holds(reviewed.holds)
    first_seq, last_seq = posting.first_seq, posting.first_seq + settled.num_rows - 1
    with report.timed("ledger"):
        transfers = store.post_credits(batch_id, first_seq, last_seq, posting.received_at)
        counts = Counter(stored.column("status").to_pylist())
        credited = pc.equal(stored.column("status"), Status.CREDITED.value)
        credited_g = int(pc.sum(stored.column("reduction_g").filter(credited)).as_py() or 0)
        store.add_to_batch(batch_id, dict(counts), credited_g)
    with report.timed("tallies"):
        registered = {
            subject
            for subject, new in zip(
                subject_ids.column("subject_id").to_pylist(),
                subject_ids.column("registered").to_pylist(),
                strict=True,
            )
            if new
        }
        store.add_to_tallies(platform_id, stored, first_seq, last_seq, usage, registered)
    if reviewed.corroborations:
        with report.timed("review"):
            review.corroborate(store, reviewed.corroborations, posting.received_at)
    return transfers, credited_g, settled


def _lookups(
    store: IntakeStore, prepared: pa.Table, platform_id: int
) -> tuple[pa.Table, int, pa.Table, pa.Table, pa.Table, pa.Table]:
    """Number the chunk in receive order and fetch what the database knows of its keys."""
    n = prepared.num_rows
    first_seq = store.allocate("record", n)
    prepared = prepared.append_column("seq", pa.array(range(first_seq, first_seq + n), pa.int64()))
    # Only what the lookups read is filtered: a filter costs a kernel call per column.
    valid = prepared.select(["scene", "ref", "pseudonym", "start_ms", "end_ms"]).filter(
        pc.equal(pc.list_value_length(prepared.column("checks")), 0)
    )

    subject_ids = store.subject_ids(p for p in prepared.column("pseudonym").to_pylist() if p)
    existing = store.existing_records(
        # An over-long record_id is rejected without a key of its own: nothing to look up (an
        # ill-typed one is no id at all).
        platform_id,
        (r for r in prepared.column("record_id").to_pylist() if r and len(r) <= MAX_RECORD_ID),
    )
    ids = dict(
        zip(
            subject_ids.column("pseudonym").to_pylist(),
            subject_ids.column("subject_id").to_pylist(),
            strict=True,
        )
    )
    refs = {
        (s, r)
        for s, r in zip(
            valid.column("scene").to_pylist(), valid.column("ref").to_pylist(), strict=True
        )
        if r is not None
    }
    chunk_subjects = [ids[p] for p in valid.column("pseudonym").to_pylist()]
    trips = [
        (subject, start, end)
        for subject, start, end in zip(
            chunk_subjects,
            valid.column("start_ms").to_pylist(),
            valid.column("end_ms").to_pylist(),
            strict=True,
        )
        if end is not None
    ]
    claims = store.existing_claims(refs, trips)
    usage = usage_around(store, chunk_subjects, valid)
    return prepared, first_seq, subject_ids, existing, claims, usage


def usage_around(store: IntakeStore, subjects: Sequence[int], valid: pa.Table) -> pa.Table:
    """The `usage_day` lookup of a chunk: what its citizens (`subjects`, those of its valid
    records `valid`, in order) were credited over the whole months of its records."""
    starts = valid.column("start_ms")
    lo = pc.min(starts).as_py()
    hi = pc.max(pc.coalesce(valid.column("end_ms"), starts)).as_py()
    if lo is None or hi is None:
        return store.usage_day((), 0, 0)
    return store.usage_day(subjects, china_time.month_start_ms(lo), china_time.next_month_ms(hi))


def _store(
    store: IntakeStore,
    pipeline: Pipeline,
    preparer: Preparer,
    settled: pa.Table,
    platform_id: int,
    batch_id: int,
) -> pa.Table:
    """Store new records with their receipts, and the audit of refused submissions; returns
    the records stored."""
    units = preparer.units()
    known = pipeline.quantification_ids
    keys = {k for k in settled.column("quant_key").to_pylist() if k}
    qids = {k: known[k] for k in keys if k in known}
    qids |= store.quantification_ids({k: calculation_row(units[k]) for k in keys - qids.keys()})
    pipeline.stored_quantifications = qids
    new = settled.filter(pc.equal(settled.column("role"), pa.scalar(Role.NEW.value)))
    new = new.append_column(
        "quantification_id",
        pa.array(
            [qids.get(k) if k else None for k in new.column("quant_key").to_pylist()], pa.int64()
        ),
    )
    new = new.append_column("device", signals.devices_of(pipeline.settler, new.column("extra")))
    store.write_records(batch_id, platform_id, new)
    roles = settled.column("role").to_pylist()
    conflicts = [
        (seq, digest, row)
        for role, seq, digest, row in zip(
            roles,
            settled.column("receipt_seq").to_pylist(),
            settled.column("digest").to_pylist(),
            settled.column("row").to_pylist(),
            strict=True,
        )
        if role == Role.CONFLICT
    ]
    store.write_conflicts(batch_id, conflicts)
    unkeyed = [
        (row, rid, reason)
        for role, row, rid, reason in zip(
            roles,
            settled.column("row").to_pylist(),
            settled.column("record_id").to_pylist(),
            settled.column("reason").to_pylist(),
            strict=True,
        )
        if role == Role.UNKEYED
    ]
    store.write_unkeyed(batch_id, unkeyed)
    return new


def receipts_of(settled: pa.Table, platform: str, file: str) -> pa.Table:
    n = settled.num_rows
    return pa.table(
        {
            "platform": pa.array([platform] * n, pa.string()),
            "record_id": settled.column("record_id"),
            "status": settled.column("status"),
            "reason": pc.fill_null(settled.column("reason"), ""),
            "reduction_g": pc.fill_null(settled.column("reduction_g"), 0),
            "methodology": settled.column("methodology"),
            "file": pa.array([file] * n, pa.string()),
            "row": settled.column("row"),
            "detail": pc.fill_null(settled.column("detail"), ""),
            "settled_now": pc.equal(settled.column("role"), pa.scalar(Role.NEW.value)),
        }
    )


@contextmanager
def receipts_csv(path: Path | None) -> Iterator[Callable[[pa.Table], None] | None]:
    """A receipts sink writing one CSV file (header once, chunks appended); None without path."""
    if path is None:
        yield None
        return
    writer: pacsv.CSVWriter | None = None
    with path.open("wb") as f:

        def sink(table: pa.Table) -> None:
            nonlocal writer
            table = table.drop_columns(["settled_now"])
            if writer is None:
                writer = pacsv.CSVWriter(f, table.schema)
            writer.write_table(table)

        yield sink
        if writer is not None:
            writer.close()
