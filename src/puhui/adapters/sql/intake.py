"""Intake storage: what settlement needs to know about earlier records, and writing a settled
chunk with its credits, set-based, in the caller's transaction.

Keys of the chunk are first staged into temporary tables so that every lookup is one indexed
join, whatever the size of the chunk or of the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, bindparam, insert, select, text, update

from puhui.adapters.sql import holds, ledger, nonces, tallies
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.bulk import (
    execute,
    fetch_arrow,
    insert_rows,
    refresh_statistics,
    rows_of,
)
from puhui.domain import china_time
from puhui.domain.errors import NotFoundError
from puhui.domain.reasons import Status
from puhui.domain.review import OpenHold, Resolution
from puhui.domain.rules import LONGEST_TRIP_MS
from puhui.domain.scenes import MAX_DEVICE, MAX_RECORD_ID, MAX_REF_KEY
from puhui.domain.signing import Refusal

# The key sets of a chunk's lookups: their columns and SQL types.
_STAGING: dict[str, tuple[tuple[str, str], ...]] = {
    "stage_keys": (("record_id", f"varchar({MAX_RECORD_ID})"),),
    "stage_refs": (("scene", "varchar(16)"), ("ref", f"varchar({MAX_REF_KEY})")),
    "stage_subjects": (("pseudonym", "varchar(64)"),),
    "stage_subject_ids": (("subject_id", "integer"),),
    "stage_trips": (("subject_id", "integer"), ("start_ms", "bigint"), ("end_ms", "bigint")),
    "stage_devices": (("device", f"varchar({MAX_DEVICE})"),),
    "stage_region_scenes": (("region", "varchar(6)"), ("scene", "varchar(16)")),
}

# Up to this many keys of one kind are bound as parameters; more are staged in a temporary table.
INLINE_KEYS = 500

EXISTING_RECORDS = pa.schema(
    [
        ("record_id", pa.string()),
        ("seq", pa.int64()),
        ("digest", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("reduction_g", pa.int64()),
        ("methodology", pa.string()),
        ("duplicate_of", pa.int64()),
    ]
)
CLAIMS = pa.schema(
    [
        ("seq", pa.int64()),
        ("scene", pa.string()),
        ("ref", pa.string()),
        ("subject_id", pa.int64()),
        ("kind", pa.string()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
    ]
)
USAGE = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("scene", pa.string()),
        ("day", pa.date32()),
        ("g", pa.int64()),
        ("n", pa.int64()),
        # Of `n`, the records credited (the rest are held): who was credited before, for the
        # statistics' participants.
        ("credited_n", pa.int64()),
    ]
)
# A stored record as the claims store keeps it: its platform, its receipt and its claim.
STORED_RECORDS = pa.schema(
    [
        ("platform_id", pa.int64()),
        *EXISTING_RECORDS,
        *(f for f in CLAIMS if f.name in ("scene", "ref", "start_ms", "end_ms")),
        ("pseudonym", pa.string()),
    ]
)
SUBJECT_IDS = pa.schema(
    [("pseudonym", pa.string()), ("subject_id", pa.int64()), ("registered", pa.bool_())]
)

RECORD_COLUMNS = (
    "seq",
    "record_id",
    "digest",
    "subject_id",
    "scene",
    "region",
    "start_ms",
    "end_ms",
    "amount_milli",
    "material",
    "ref",
    "extra",
    "status",
    "reason",
    "detail",
    "reduction_g",
    "methodology",
    "quantification_id",
    "duplicate_of",
    "device",
)


# Statements every chunk runs, built once: a statement built per call costs more to build and
# to find in the compiled cache than an API group's whole row of a batch costs to write.
_NEW_BATCH = insert(t.batches).returning(t.batches.c.id)
_ADD_TO_BATCH = (
    update(t.batches)
    .where(t.batches.c.id == bindparam("batch"))
    .values(
        {
            name: t.batches.c[name] + bindparam(name, type_=t.batches.c[name].type)
            for name in ("records", "credited", "duplicate", "rejected", "credited_g")
        }
    )
)
_BUMP = text(
    "update meta set value = cast(cast(value as bigint) + :n as varchar(20)) "
    "where key = :key returning value"
)


class IntakeStore:
    """Reads and writes of the intake and ledger tables for one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._staged = False

    # Platforms, batches and counters -------------------------------------------------------

    def platform_id(self, code: str) -> int:
        """The id of a registered platform.

        Raises:
            NotFoundError: no platform with that code.
        """
        found = self.conn.execute(
            select(t.platforms.c.id).where(t.platforms.c.code == code)
        ).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"platform {code!r} is not registered (puhui platform add {code})")
        return int(found)

    def claim_nonces(self, seen: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], Refusal]:
        """Remember signed requests' nonces (key id, nonce, seen in epoch ms); return the
        (key id, nonce) pairs refused, and why: used before (or twice among these), or of a
        key revoked since."""
        return nonces.claim(self.conn, seen)

    def new_batch(self, platform_id: int, source: str, received_at: datetime) -> int:
        """Open a batch and return its id."""
        result = self.conn.execute(
            _NEW_BATCH, {"platform_id": platform_id, "source": source, "received_at": received_at}
        )
        return int(result.scalar_one())

    def add_to_batch(self, batch_id: int, counts: dict[str, int], credited_g: int) -> None:
        """Add a settled chunk's counts to its batch."""
        self.conn.execute(
            _ADD_TO_BATCH,
            {
                "batch": batch_id,
                "records": sum(counts.values()),
                "credited": counts.get("credited", 0),
                "duplicate": counts.get("duplicate", 0),
                "rejected": counts.get("rejected", 0),
                "credited_g": credited_g,
            },
        )

    def allocate(self, counter: str, n: int) -> int:
        """Reserve `n` consecutive ids from a named counter and return the first.

        The counter row is updated before it is read, so concurrent writers queue behind each
        other and receive disjoint, increasing ranges: the receive order of records.
        """
        key = f"next_{counter}"
        updated = self.conn.execute(_BUMP, {"n": n, "key": key}).scalar_one_or_none()
        if updated is None:
            # First use: create the counter; a concurrent first use waits for this row and
            # then bumps it instead of inserting it again.
            self.conn.execute(
                text(
                    "insert into meta (key, value) values (:key, '1') on conflict (key) do nothing"
                ),
                {"key": key},
            )
            updated = self.conn.execute(_BUMP, {"n": n, "key": key}).scalar_one()
        return int(updated) - n

    # Lookups -------------------------------------------------------------------------------

    def _keys(self, name: str, rows: Sequence[tuple[Any, ...]]) -> tuple[str, dict[str, Any]]:
        """A row source of keys of the set `name` to join on, and its parameters.

        Up to INLINE_KEYS keys are bound as a VALUES list: a small chunk (an API submission)
        costs one statement per lookup. More keys are staged in a temporary table (emptied,
        filled in bulk and, on PostgreSQL, analysed), so that a lookup stays one indexed join
        whatever the size of the chunk. Either way the source's columns are column1, column2, …
        """
        columns = _STAGING[name]
        if not rows:
            nulls = ", ".join(
                f"cast(null as {t}) as column{i + 1}" for i, (_, t) in enumerate(columns)
            )
            return f"(select {nulls} where 1 = 0)", {}
        if len(rows) <= INLINE_KEYS:
            params = {f"{name}_{r}_{c}": v for r, row in enumerate(rows) for c, v in enumerate(row)}
            values = ", ".join(
                "(" + ", ".join(f":{name}_{r}_{c}" for c in range(len(columns))) + ")"
                for r in range(len(rows))
            )
            return f"(values {values})", params
        if not self._staged:
            for table, cols in _STAGING.items():
                ddl = ", ".join(f"{c} {t}" for c, t in cols)
                self.conn.execute(text(f"create temporary table if not exists {table} ({ddl})"))
            self._staged = True
        self.conn.execute(text(f"delete from {name}"))
        insert_rows(self.conn, name, [c for c, _ in columns], rows)
        if self.conn.dialect.name == "postgresql":
            # Temporary tables are never analysed automatically: without statistics the
            # planner guesses their size and may scan `records` instead of probing its indexes.
            self.conn.execute(text(f"analyze {name}"))
        named = ", ".join(f"{c} as column{i + 1}" for i, (c, _) in enumerate(columns))
        return f"(select {named} from {name})", {}

    def subject_ids(self, pseudonyms: Iterable[str]) -> pa.Table:
        """Register new pseudonyms and return the id of each one, and whether this call
        registered it."""
        distinct = sorted(set(pseudonyms))
        source, params = self._keys("stage_subjects", [(p,) for p in distinct])
        register = (
            f"insert into subjects (pseudonym) select k.column1 from {source} k "
            "where not exists (select 1 from subjects x where x.pseudonym = k.column1) "
            # Ids in the order of the pseudonyms, whatever plan the database chose.
            "order by k.column1 on conflict (pseudonym) do nothing returning pseudonym, id"
        )
        known = (
            f"select x.pseudonym, x.id from subjects x join {source} k on x.pseudonym = k.column1"
        )
        if self.conn.dialect.name == "postgresql":
            # One round trip: the new ids and the known ones. A pseudonym another transaction
            # registered after this statement's snapshot is in neither part; it is read again.
            rows, _ = execute(
                self.conn,
                f"with added as ({register}) select pseudonym, id, true from added "
                f"union all select x.*, false from ({known}) x",
                params,
            )
            registered = {i for _, i, new in rows if new}
            if len(rows) < len(distinct):
                rows, _ = execute(self.conn, known, params)
        else:
            inserted, _ = execute(self.conn, register, params)
            registered = {i for _, i in inserted}
            rows, _ = execute(self.conn, known, params)
        refresh_statistics(self.conn, "subjects", len(registered))
        return pa.table(
            [
                pa.array([r[0] for r in rows], pa.string()),
                pa.array([r[1] for r in rows], pa.int64()),
                pa.array([r[1] in registered for r in rows], pa.bool_()),
            ],
            schema=SUBJECT_IDS,
        )

    def existing_records(self, platform_id: int, record_ids: Iterable[str]) -> pa.Table:
        """Stored receipts of this platform's records with these ids."""
        source, params = self._keys("stage_keys", [(r,) for r in set(record_ids)])
        return fetch_arrow(
            self.conn,
            "select r.record_id, r.seq, r.digest, r.status, r.reason, r.detail, r.reduction_g, "
            f"r.methodology, r.duplicate_of from records r join {source} k "
            "on r.record_id = k.column1 where r.platform_id = :platform",
            {"platform": platform_id, **params},
            EXISTING_RECORDS,
        )

    def existing_claims(
        self, refs: Iterable[tuple[str, str]], trips: Iterable[tuple[int, int, int]]
    ) -> pa.Table:
        """Stored records that are not rejected and could be the same behaviour as a record of
        the chunk: the same (scene, ref), or a trip of the same citizen (subject id, start,
        end) that shares some time with it. Each trip is looked up in the index of citizens'
        trips by start, over the starts that could reach it (no trip lasts longer than
        LONGEST_TRIP_MS), so only the stored trips a rule could compare are returned."""
        by_ref, params = self._keys("stage_refs", sorted(set(refs)))
        columns = (
            "r.seq, r.scene, r.ref, r.subject_id, "
            "case when r.end_ms is null then 'event' else 'trip' end as kind, r.start_ms, r.end_ms"
        )
        sql = (
            f"select {columns} from records r join {by_ref} k "
            "on r.scene = k.column1 and r.ref = k.column2 "
            "where r.ref is not null and r.status <> 'rejected'"
        )
        spans = sorted(set(trips))
        if spans:
            by_trip, more = self._keys("stage_trips", spans)
            # `cross join` keeps SQLite's join order: each chunk trip probes the index.
            sql += (
                f" union select {columns} from {by_trip} k cross join records r "
                "where r.subject_id = k.column1 and r.start_ms >= k.column2 - :longest "
                "and r.start_ms < k.column3 and r.end_ms > k.column2 and r.status <> 'rejected'"
            )
            params = {**params, **more, "longest": LONGEST_TRIP_MS}
        return fetch_arrow(self.conn, sql, params, CLAIMS)

    def usage_day(self, subject_ids: Iterable[int], first_ms: int, last_ms: int) -> pa.Table:
        """Grams and records already credited (or held: they count towards caps) per citizen,
        scene and day (Asia/Shanghai) between two instants (the caller widens them to whole
        months). A restated credit counts with its grams now (`restated_credits`)."""
        by_subject, params = self._keys(
            "stage_subject_ids", [(s,) for s in sorted(set(subject_ids))]
        )
        # Looked up per record only once there is a restatement (a correlated probe per row).
        restated = (
            " + coalesce((select sum(x.grams - x.grams_before) from restated_credits x "
            "where x.record_seq = r.seq), 0)"
            if self.conn.execute(text("select 1 from restated_credits limit 1")).first()
            else ""
        )
        rows, _ = execute(
            self.conn,
            "select r.subject_id, r.scene, (r.start_ms + :cn) / :day as day, "
            f"sum(r.reduction_g{restated}), count(*), "
            "sum(case when r.status = 'credited' then 1 else 0 end) "
            f"from records r join {by_subject} k on r.subject_id = k.column1 "
            "where (r.status = 'credited' or r.status = 'held') "
            "and r.start_ms >= :lo and r.start_ms < :hi "
            "group by r.subject_id, r.scene, (r.start_ms + :cn) / :day",
            {
                "cn": china_time.OFFSET_MS,
                "day": china_time.DAY_MS,
                "lo": first_ms,
                "hi": last_ms,
                **params,
            },
        )
        return pa.table(
            {
                "subject_id": pa.array([r[0] for r in rows], pa.int64()),
                "scene": pa.array([r[1] for r in rows], pa.string()),
                "day": pa.array([int(r[2]) for r in rows], pa.int32()).cast(pa.date32()),
                "g": pa.array([int(r[3]) for r in rows], pa.int64()),
                "n": pa.array([int(r[4]) for r in rows], pa.int64()),
                "credited_n": pa.array([int(r[5]) for r in rows], pa.int64()),
            },
            schema=USAGE,
        )

    # Held records (spec v1.1) ------------------------------------------------------------

    def signal_history(
        self, citizens: Iterable[int], devices: Iterable[str], lo_ms: int, hi_ms: int
    ) -> pa.Table:
        """Stored valid records of these citizens or devices starting between two instants
        (`holds.SEEN_STORED`)."""
        return holds.signal_history(self.conn, self._keys, citizens, devices, lo_ms, hi_ms)

    def burst_history(
        self, platform_id: int, regions_scenes: Iterable[tuple[str, str]], lo_ms: int, hi_ms: int
    ) -> pa.Table:
        """The platform's stored valid records per region, scene and start minute
        (`holds.BURST_HISTORY`)."""
        return holds.burst_history(self.conn, self._keys, platform_id, regions_scenes, lo_ms, hi_ms)

    def write_holds(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store why records were held (`holds.HOLD_COLUMNS`)."""
        holds.write_holds(self.conn, rows)

    def federated(self) -> bool:
        """Whether this node has joined a registry (`federation_link` has its row)."""
        return self.conn.execute(text("select 1 from federation_link")).first() is not None

    def federation_tallies(self) -> dict[str, int]:
        """This node's figures for the registry's oversight (no personal data): records by
        status and the grams credited."""
        rows = self.conn.execute(
            text(
                "select status, sum(records), sum(grams) from tallies "
                "where dimension = 'all' group by status"
            )
        ).all()
        found = {str(status): (int(n or 0), int(g or 0)) for status, n, g in rows}
        out = {status.value: found.get(status.value, (0, 0))[0] for status in Status}
        out["records"] = sum(n for n, _ in found.values())
        out["credited_g"] = found.get("credited", (0, 0))[1]
        return out

    def open_holds(self, seqs: Iterable[int]) -> list[OpenHold]:
        """The held records among these, not decided yet."""
        return holds.open_holds(self.conn, seqs)

    def expiring(self, at: datetime) -> list[OpenHold]:
        """Held records still awaiting corroboration whose window ended by `at`."""
        return holds.expiring(self.conn, at)

    def note_corroboration(self, seq: int, by_seq: int) -> None:
        """Remember that an authority reported a held record's behaviour."""
        holds.note_corroboration(self.conn, seq, by_seq)

    def resolve_holds(self, resolutions: Sequence[Resolution], at: datetime) -> list[int]:
        """End held records (`holds.resolve`)."""
        return holds.resolve(self.conn, resolutions, at)

    # The claims store of the Spark engine ------------------------------------------------

    def claims_mark(self) -> tuple[int, int]:
        """What the claims store must hold to be in step: the last stored record's seq (0 when
        none) and the number of changes to stored records since: erasures made and held
        records decided (either makes the store export everything again)."""
        last = self.conn.execute(text("select coalesce(max(seq), 0) from records")).scalar_one()
        erased = self.conn.execute(
            text(
                "select (select count(*) from erasures) "
                "+ (select count(*) from holds where decided_at is not null)"
            )
        ).scalar_one()
        return int(last), int(erased)

    def stored_after(self, after_seq: int, up_to_seq: int, size: int) -> Iterator[pa.Table]:
        """Stored records with seq in (after_seq, up_to_seq], in seq order, `size` at a time:
        STORED_RECORDS, each with its citizen's pseudonym."""
        while True:
            part = fetch_arrow(
                self.conn,
                "select r.platform_id, r.record_id, r.seq, r.digest, r.status, r.reason, "
                "r.detail, r.reduction_g, r.methodology, r.duplicate_of, r.scene, r.ref, "
                "r.start_ms, r.end_ms, s.pseudonym from records r "
                "left join subjects s on s.id = r.subject_id "
                "where r.seq > :after and r.seq <= :last order by r.seq limit :size",
                {"after": after_seq, "last": up_to_seq, "size": size},
                STORED_RECORDS,
            )
            if not part.num_rows:
                return
            yield part
            after_seq = part.column("seq")[-1].as_py()

    # Writes --------------------------------------------------------------------------------

    def quantification_ids(self, traces: dict[str, tuple[dict[str, str], str]]) -> dict[str, int]:
        """Store calculations not stored yet and return the id of every one by key.

        `traces` maps key → (columns, trace JSON).
        """
        if not traces:
            return {}
        q = t.quantifications
        known = dict(
            self.conn.execute(select(q.c.digest, q.c.id).where(q.c.digest.in_(list(traces)))).all()
        )
        # In the order of their keys: the same calculations get the same ids, whatever order
        # they were met in.
        for key, (columns, trace) in sorted(traces.items()):
            if key not in known:
                known[key] = self.conn.execute(
                    insert(q).values(digest=key, trace=trace, **columns).returning(q.c.id)
                ).scalar_one()
        return {k: int(v) for k, v in known.items()}

    def write_records(self, batch_id: int, platform_id: int, rows: pa.Table) -> None:
        """Store new records with their receipts."""
        insert_rows(
            self.conn,
            "records",
            ("batch_id", "platform_id", *RECORD_COLUMNS),
            [(batch_id, platform_id, *r) for r in rows_of(rows, RECORD_COLUMNS)],
        )

    def write_conflicts(self, batch_id: int, rows: Sequence[tuple[int, str, int]]) -> None:
        """Keep refused conflicting replays (receipt seq, digest, row) for audit."""
        insert_rows(
            self.conn,
            "conflicts",
            ("batch_id", "record_seq", "digest", "line"),
            [(batch_id, *r) for r in rows],
        )

    def write_unkeyed(self, batch_id: int, rows: Sequence[tuple[int, str | None, str]]) -> None:
        """Keep rejections that have no (platform, record_id) of their own, for audit."""
        insert_rows(
            self.conn,
            "unkeyed_rejections",
            ("batch_id", "line", "record_id", "reason"),
            [(batch_id, line, rid[:128] if rid else None, why) for line, rid, why in rows],
        )

    def add_to_tallies(
        self,
        platform_id: int,
        stored: pa.Table,
        first_seq: int,
        last_seq: int,
        usage: pa.Table,
        registered: AbstractSet[int] = frozenset(),
    ) -> None:
        """Add a settled chunk's stored records to the statistics' tallies (`usage`: the
        chunk's `usage_day` lookup; `registered`: the citizens it registered)."""
        tallies.add(self.conn, platform_id, stored, first_seq, last_seq, usage, registered)

    def post_credits(self, batch_id: int, first_seq: int, last_seq: int, at: datetime) -> int:
        """Post one transfer per credited record with seq in [first_seq, last_seq] (the
        ledger writer's `post_credits`); returns their count."""
        return ledger.post_credits(self.conn, batch_id, first_seq, last_seq, at)
