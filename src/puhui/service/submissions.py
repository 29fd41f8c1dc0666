"""Submissions over the API, settled in groups (group commit).

A settlement costs about the same whether it holds one record or thousands: it takes the
receive-order counter until it commits (that is what makes "first received wins" hold between
concurrent requests), it runs the same DuckDB statements and it commits once. So a process
settles its submissions one group at a time, on one warm `Pipeline`: whatever arrived while a
group settled forms the next one. A lone submission settles at once; nothing waits for company.

A group holds the submissions of one platform, in the order they arrived, up to
`MAX_GROUP_RECORDS` records. It is one batch and one transaction: it commits whole or fails
whole, and each submission is answered with its own receipts, exactly as if it had been settled
alone right after the submissions before it. The nonces of the signed requests that carried
them are claimed in that transaction too (one statement for the group, no commit of their
own): should one have been used before, the group stores nothing, that request is refused as
replayed and the others settle as a group again. Should anything else fail a group (a record no
check foresaw, a fault of the database), nothing of it was stored either, and its submissions
settle again one by one: only the one that causes it fails. Among submissions of several
platforms waiting together, receive order follows the first arrival of each platform.

After a group is answered, the ledger's recent commits are sealed into its hash chain
(`service.ledger.seal`, quick, a short transaction of its own, best effort): after every group
when no other is waiting, else at most once every `SEAL_EVERY_S` while groups follow each
other.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from puhui.bootstrap import App
from puhui.domain.errors import InputError
from puhui.service import ledger
from puhui.service.credentials import Signed, refusal, replayed
from puhui.service.ingest import RefusedNonces, ingest_records
from puhui.service.pipeline import Pipeline

MAX_GROUP_RECORDS = 20_000
# While groups follow each other, the ledger is sealed at most this often (seconds).
SEAL_EVERY_S = 1.0

log = logging.getLogger("puhui.settlement")


class Receipt(NamedTuple):
    """What became of one submitted record (the fields of an activity-record v1 receipt)."""

    platform: str
    record_id: str | None
    status: str
    reason: str
    reduction_g: int
    methodology: str
    detail: str


@dataclass(frozen=True, slots=True)
class Submitted:
    """The answer to one submission.

    Attributes:
        batch: the batch it was recorded in (shared by the submissions settled with it).
        receipts: one per record, in the order of the records.
        credited_g: grams newly credited by this submission (replays credit nothing).
    """

    batch: int
    receipts: tuple[Receipt, ...]
    credited_g: int


@dataclass(slots=True)
class _Submission:
    platform: str
    records: Sequence[object]
    signed: Signed | None = None
    answer: Future[Submitted] = field(default_factory=Future)


# Called with a settled group's submissions, records, seconds and receipts by status.
GroupObserver = Callable[[int, int, float, Counter[str]], None]


class GroupCommit:
    """Settles the submissions of one process in groups, on a thread of its own.

    Args:
        app: the application.
        max_records: most records in one group (a larger submission settles alone).
        observe: called after each settled group with its submissions, records, seconds and
            receipts by status.
    """

    def __init__(
        self,
        app: App,
        max_records: int = MAX_GROUP_RECORDS,
        observe: GroupObserver | None = None,
    ) -> None:
        self.app = app
        self.max_records = max_records
        self.observe = observe
        self._waiting: SimpleQueue[_Submission | None] = SimpleQueue()
        self._held: _Submission | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(
        self, platform: str, records: Sequence[object], signed: Signed | None = None
    ) -> Submitted:
        """Settle the records of one submission and wait for their receipts. `signed`: the
        signed request that carried it, whose nonce is claimed with the group.

        Raises:
            InputError: no records.
            AuthenticationError: `replayed_nonce`, the request's nonce was used before;
                `revoked_key`, its key was revoked since it was verified.
            RuntimeError: the settlement loop is closed.
            Exception: whatever failed this submission's settlement, settled alone (nothing of
                it was committed).
        """
        return self.enqueue(platform, records, signed).result()

    def enqueue(
        self, platform: str, records: Sequence[object], signed: Signed | None = None
    ) -> Future[Submitted]:
        """Queue the records of one submission for settlement and return at once: the future
        receives the receipts, or what `submit` would raise, from the settlement thread.

        Raises:
            InputError: no records.
            RuntimeError: the settlement loop is closed.
        """
        if not records:
            raise InputError("a submission holds at least one record")
        submission = _Submission(platform, records, signed)
        with self._lock:
            if self._closed:
                raise RuntimeError("the settlement loop is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="puhui-settle", daemon=True)
                self._thread.start()
            self._waiting.put(submission)
        return submission.answer

    async def settle(
        self, platform: str, records: Sequence[object], signed: Signed | None = None
    ) -> Submitted:
        """`submit` for a caller on an event loop: waits without holding a thread."""
        return await asyncio.wrap_future(self.enqueue(platform, records, signed))

    async def aclose(self) -> None:
        """`close` for a caller on an event loop."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Settle what is waiting, then stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._waiting.put(None)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        pipeline = Pipeline(self.app)
        sealed = time.monotonic()
        try:
            while (group := self._next_group()) is not None:
                for platform_group in _by_platform(group):
                    self._settle(pipeline, platform_group)
                if self._waiting.empty() or time.monotonic() - sealed >= SEAL_EVERY_S:
                    ledger.seal_quietly(self.app, everything=False)
                    sealed = time.monotonic()
        finally:
            pipeline.close()

    def _next_group(self) -> list[_Submission] | None:
        """The held submission or the next to arrive, with whatever else is waiting, up to the
        group's size; None once closed and drained."""
        first = self._held or self._waiting.get()
        self._held = None
        if first is None:
            return None
        group, size = [first], len(first.records)
        while not self._waiting.empty():
            more = self._waiting.get()
            if more is None:
                self._waiting.put(None)  # seen again once this group is settled
                break
            if size + len(more.records) > self.max_records:
                self._held = more
                break
            group.append(more)
            size += len(more.records)
        return group

    def _settle(self, pipeline: Pipeline, group: list[_Submission]) -> None:
        group = _without_replays_among(group)
        if not group:
            return
        records = [record for submission in group for record in submission.records]
        nonces = [s.signed.claim for s in group if s.signed is not None]
        started = time.perf_counter()
        try:
            report, receipts = ingest_records(
                self.app, group[0].platform, records, pipeline=pipeline, nonces=nonces
            )
        except RefusedNonces as error:
            # Rare: nothing was stored. Refuse the replays (and requests of keys revoked
            # since they were verified), settle the others again.
            others = []
            for submission in group:
                signed = submission.signed
                why = None if signed is None else error.refused.get(signed.claim[:2])
                if signed is not None and why is not None:
                    submission.answer.set_exception(refusal(signed, why))
                else:
                    others.append(submission)
            self._settle(pipeline, others)
            return
        except Exception as error:
            if len(group) == 1:
                group[0].answer.set_exception(error)
                return
            # Nothing was stored. Whatever failed the group fails only the submission that
            # causes it: each settles again alone, in arrival order.
            log.warning(
                "a group of %d submissions failed (%s); settling them one by one",
                len(group),
                type(error).__name__,
            )
            for submission in group:
                self._settle(pipeline, [submission])
            return
        except BaseException as error:
            for submission in group:
                submission.answer.set_exception(error)
            raise
        if self.observe is not None:
            self.observe(len(group), len(records), time.perf_counter() - started, report.by_status)
        rows, credits = _rows(receipts)
        offset = 0
        for submission in group:
            n = len(submission.records)
            mine = slice(offset, offset + n)
            answer = Submitted(report.batches[0], tuple(rows[mine]), sum(credits[mine]))
            submission.answer.set_result(answer)
            offset += n


def _rows(receipts: pa.Table) -> tuple[list[Receipt], list[int]]:
    """A group's receipts as rows, and the grams each record newly credited. (`ingest`'s
    receipts leave only a rejected record's methodology null.)"""
    receipts = receipts.set_column(
        receipts.schema.get_field_index("methodology"),
        "methodology",
        pc.fill_null(receipts.column("methodology"), ""),
    )
    columns = [receipts.column(f).to_pylist() for f in Receipt._fields]
    rows = [Receipt._make(values) for values in zip(*columns, strict=True)]
    credits = [
        r.reduction_g if now and r.status == "credited" else 0
        for r, now in zip(rows, receipts.column("settled_now").to_pylist(), strict=True)
    ]
    return rows, credits


def _without_replays_among(group: list[_Submission]) -> list[_Submission]:
    """The group without the requests whose nonce an earlier one of the group carries, those
    refused as replayed."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for submission in group:
        signed = submission.signed
        if signed is not None and signed.claim[:2] in seen:
            submission.answer.set_exception(replayed(signed))
            continue
        if signed is not None:
            seen.add(signed.claim[:2])
        kept.append(submission)
    return kept


def _by_platform(group: list[_Submission]) -> list[list[_Submission]]:
    """Split a group by platform, each platform's submissions in arrival order."""
    by: dict[str, list[_Submission]] = {}
    for submission in group:
        by.setdefault(submission.platform, []).append(submission)
    return list(by.values())
