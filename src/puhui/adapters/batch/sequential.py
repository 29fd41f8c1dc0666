"""Settlement of small chunks by the statement of the rules itself (`domain.settlement`).

A DuckDB statement costs tens of milliseconds to bind, optimise and schedule whatever the size
of its data, so an API submission of one or a hundred records would pay that for nothing. Small
chunks are decided instead by `domain.settlement.Book`, loaded with what the lookups fetched
from the database (stored receipts of the chunk's record ids, claims of its refs and citizens'
trips, cap usage of its citizens' months): the same inputs and the same output columns as
`settle.settle`, so the rest of the ingest cannot tell them apart.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from puhui.adapters.batch.settle import UNKEYED
from puhui.domain.reasons import Reason, Status
from puhui.domain.settlement import Book, Candidate, Caps, Claim, Decision, Role, Usage, settle

# Up to this many records a chunk is settled here; above it, by the DuckDB statement. Measured
# on 2 cores in API groups of new citizens: here 21 ms for 1 600 records, 41 ms for 3 200 and
# 93 ms for 6 400 (some 13 µs a record); in DuckDB 64 to 75 ms from 1 600 to 6 400 records.
# They meet near 5 000.
SMALL_CHUNK = 4_800
# Up to this many records a chunk is prepared by `domain.intake`; above it, in Arrow kernels
# (`adapters.batch.vectorised`), then by DuckDB (`prepare.ARROW_PREPARE`). Measured with a warm
# preparer: 100 records 3.9 ms against 5.2 ms in Arrow, 150 records 6.2 against 5.6 ms, 200
# records 8.4 against 5.5 ms; they meet near 130.
SMALL_PREPARE = 128
# From this many records, those that meet nothing are credited column by column (`alone`): its
# twenty-odd kernel calls cost more than deciding a few records by the statement (15 records:
# 0.9 against 0.4 ms), and less from some tens on (1 600 new citizens: 2.3 against 20 ms).
ALONE_FROM = 64

_PASSED = (
    "row", "seq", "record_id", "digest", "subject_id", "scene", "region", "kind", "start_ms",
    "end_ms", "amount_milli", "material", "ref", "extra", "quant_key",
)  # fmt: skip
# The columns of a prepared chunk a candidate is made of, in the order `candidates` reads them.
_CANDIDATE = (
    "seq", "record_id", "platform", "checks", "digest", "pseudonym", "scene", "ref", "start_ms",
    "end_ms", "kind", "day_cn", "computed_g", "methodology", "day_max_g", "day_max_count",
    "month_max_g", "month_max_count",
)  # fmt: skip
_DECIDED = pa.schema(
    [
        ("methodology", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("reduction_g", pa.int64()),
        ("duplicate_of", pa.int64()),
        ("role", pa.string()),
        ("receipt_seq", pa.int64()),
    ]
)


def candidates(prepared: pa.Table, subject_ids: pa.Table, platform_id: int) -> list[Candidate]:
    """The records of a prepared chunk (with `seq`) as settlement's candidates; citizens are
    their subject ids."""
    ids = dict(
        zip(
            subject_ids.column("pseudonym").to_pylist(),
            subject_ids.column("subject_id").to_pylist(),
            strict=True,
        )
    )
    unkeyed = set(UNKEYED)
    out = []
    for (
        seq, record_id, platform, checks, digest, pseudonym, scene, ref, start_ms, end_ms, kind,
        day, computed_g, methodology, day_max_g, day_max_count, month_max_g, month_max_count,
    ) in zip(*(prepared.column(name).to_pylist() for name in _CANDIDATE), strict=True):  # fmt: skip
        checks = tuple(checks or ())
        keyed = record_id is not None and platform is not None
        keyed = keyed and not unkeyed.intersection(checks)
        out.append(
            Candidate(
                seq=seq,
                key=(platform_id, record_id) if keyed else None,
                digest=digest,
                checks=checks,
                citizen=ids.get(pseudonym),
                scene=scene,
                ref=ref,
                start_ms=start_ms,
                end_ms=end_ms if kind == "trip" else None,
                day=day,
                computed_g=computed_g or 0,
                methodology=methodology,
                caps=Caps(day_max_g, day_max_count, month_max_g, month_max_count),
            )
        )
    return out


def _book(
    platform_id: int, existing_records: pa.Table, existing_claims: pa.Table, usage_day: pa.Table
) -> tuple[Book, dict[int, dict[str, Any]]]:
    stored = {r["seq"]: r for r in existing_records.to_pylist()}
    known = [
        (
            (platform_id, r["record_id"]),
            r["digest"],
            Decision(
                r["seq"],
                Role.NEW,
                r["status"],
                r["reason"] or "",
                r["reduction_g"],
                r["methodology"],
                r["duplicate_of"],
                r["seq"],
            ),
        )
        for r in stored.values()
    ]
    claims = [
        Claim(
            c["seq"],
            c["scene"],
            c["ref"],
            c["subject_id"],
            c["start_ms"],
            c["end_ms"] if c["kind"] == "trip" else None,
        )
        for c in existing_claims.to_pylist()
    ]
    usage: dict[tuple[object, str, date], Usage] = {
        (u["subject_id"], u["scene"], u["day"]): Usage(u["n"], u["g"])
        for u in usage_day.to_pylist()
    }
    return Book.of(known, claims, usage), stored


def settle_small(
    prepared: pa.Table,
    subject_ids: pa.Table,
    existing_records: pa.Table,
    existing_claims: pa.Table,
    usage_day: pa.Table,
    platform_id: int,
) -> pa.Table:
    """Decide the receipt of every record of a prepared chunk, as `settle.settle` does.

    A record that meets nothing, neither in the chunk nor among what the lookups fetched (`alone`),
    is decided column by column: credited, up to its caps. Every other record is decided by the
    statement (`domain.settlement.Book`), in receive order."""
    if prepared.num_rows < ALONE_FROM:
        return _settle_in_order(
            prepared, subject_ids, existing_records, existing_claims, usage_day, platform_id
        )
    citizens = pc.take(
        subject_ids.column("subject_id"),
        pc.index_in(prepared.column("pseudonym"), subject_ids.column("pseudonym")),
    )
    lone = alone(prepared, citizens, existing_records, existing_claims, usage_day)
    if not pc.any(lone).as_py():
        return _settle_in_order(
            prepared, subject_ids, existing_records, existing_claims, usage_day, platform_id
        )
    others = pc.invert(lone)
    parts = [_credit_alone(prepared.filter(lone), citizens.filter(lone))]
    if pc.any(others).as_py():
        parts.append(
            _settle_in_order(
                prepared.filter(others),
                subject_ids,
                existing_records,
                existing_claims,
                usage_day,
                platform_id,
                details=prepared.column("detail").to_pylist(),
                first_seq=prepared.column("seq")[0].as_py(),
            )
        )
    together = pa.concat_tables(parts)
    return together.take(pc.sort_indices(together.column("seq")))


def alone(
    prepared: pa.Table,
    citizens: pa.Array,
    existing_records: pa.Table,
    existing_claims: pa.Table,
    usage_day: pa.Table,
) -> pa.Array:
    """The valid records of a chunk that share nothing settlement compares: no other record of
    the chunk, and no stored one, has their record_id; no other valid record of the chunk, no
    stored claim and no usage this month is of their citizen; and no other valid record of the
    chunk, nor a stored claim, has their (scene, ref). Such a record is neither a replay nor a
    duplicate, and its caps start from nothing used."""
    valid = pc.equal(pc.list_value_length(prepared.column("checks")), 0)
    keyed = pc.and_(
        pc.is_valid(prepared.column("record_id")), pc.is_valid(prepared.column("platform"))
    )
    record_id = prepared.column("record_id")
    refs = _pairs(prepared.column("scene"), prepared.column("ref"))
    stored_refs = _pairs(existing_claims.column("scene"), existing_claims.column("ref"))
    met = pc.or_(
        pc.or_(
            _repeated(record_id),
            pc.is_in(record_id, existing_records.column("record_id")),
        ),
        pc.or_(
            pc.or_(
                _repeated(pc.if_else(valid, citizens, pa.scalar(None, pa.int64()))),
                pc.is_in(
                    citizens,
                    pa.concat_arrays(
                        [
                            existing_claims.column("subject_id").combine_chunks(),
                            usage_day.column("subject_id").combine_chunks(),
                        ]
                    ),
                ),
            ),
            pc.or_(
                _repeated(pc.if_else(valid, refs, pa.scalar(None, pa.string()))),
                pc.is_in(refs, stored_refs),
            ),
        ),
    )
    return pc.fill_null(
        pc.and_(pc.and_(valid, keyed), pc.and_(pc.is_valid(citizens), pc.invert(met))), False
    )


def _pairs(scene: pa.ChunkedArray, ref: pa.ChunkedArray) -> pa.Array:
    """(scene, ref) as one value, null without a ref; two refs that merely look alike this way
    only make their records be decided by the statement."""
    return pc.binary_join_element_wise(scene, ref, chr(31))


def _repeated(values: pa.Array) -> pa.Array:
    """Whether each value occurs more than once (null: never)."""
    counts = pc.value_counts(values.drop_null())
    twice = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    return pc.is_in(values, twice)


def _credit_alone(prepared: pa.Table, citizens: pa.Array) -> pa.Table:
    """The receipts of records that are alone (`alone`): credited, the count caps first (nothing
    used yet: a cap of 0 credits 0 g), then the gram caps of the day and of the month, as
    `Book.credit_within_caps` does."""
    computed = pc.fill_null(prepared.column("computed_g"), 0)

    def allows(name: str) -> pa.Array:
        cap = prepared.column(name)
        return pc.or_(pc.is_null(cap), pc.fill_null(pc.greater(cap, 0), False))

    grams = pc.if_else(pc.and_(allows("day_max_count"), allows("month_max_count")), computed, 0)
    for name in ("day_max_g", "month_max_g"):
        cap = pc.max_element_wise(prepared.column(name), 0, skip_nulls=False)
        grams = pc.min_element_wise(grams, cap)  # no cap (null) leaves the grams as they are
    n = prepared.num_rows
    out = prepared.append_column(pa.field("subject_id", pa.int64()), citizens).select(list(_PASSED))
    decided = {
        "methodology": prepared.column("methodology"),
        "status": pa.array([str(Status.CREDITED)] * n, pa.string()),
        "reason": pc.if_else(pc.less(grams, computed), str(Reason.CAPPED), ""),
        "detail": prepared.column("detail"),
        "reduction_g": grams,
        "duplicate_of": pa.nulls(n, pa.int64()),
        "role": pa.array([str(Role.NEW)] * n, pa.string()),
        "receipt_seq": prepared.column("seq"),
    }
    for name in _DECIDED.names:
        out = out.append_column(_DECIDED.field(name), decided[name].cast(_DECIDED.field(name).type))
    return out


def _settle_in_order(
    prepared: pa.Table,
    subject_ids: pa.Table,
    existing_records: pa.Table,
    existing_claims: pa.Table,
    usage_day: pa.Table,
    platform_id: int,
    details: list[str | None] | None = None,
    first_seq: int | None = None,
) -> pa.Table:
    """Decide records by the statement, in receive order. `details` and `first_seq`: those of
    the whole chunk, when `prepared` holds only some of its records."""
    book, stored = _book(platform_id, existing_records, existing_claims, usage_day)
    chunk = candidates(prepared, subject_ids, platform_id)
    decisions = list(settle(chunk, book))
    own = prepared.column("detail").to_pylist()
    if details is None or first_seq is None:
        details, first_seq = own, chunk[0].seq if chunk else 0
    decided: dict[str, list[Any]] = {name: [] for name in _DECIDED.names}
    for d, detail in zip(decisions, own, strict=True):
        answered = d.seq if d.receipt_seq is None else d.receipt_seq
        earlier = answered < first_seq
        if d.role is Role.REPLAY:
            detail = stored[answered]["detail"] if earlier else details[answered - first_seq]
        elif d.role is Role.CONFLICT:
            detail = ""
        decided["methodology"].append(d.methodology)
        decided["status"].append(str(d.status))
        decided["reason"].append(d.reason)
        decided["detail"].append(detail)
        decided["reduction_g"].append(d.reduction_g)
        decided["duplicate_of"].append(d.duplicate_of)
        decided["role"].append(str(d.role))
        decided["receipt_seq"].append(d.receipt_seq)
    out = prepared.append_column(
        pa.field("subject_id", pa.int64()),
        pa.array([c.citizen for c in chunk], pa.int64()),
    ).select(list(_PASSED))
    for name in _DECIDED.names:
        out = out.append_column(
            _DECIDED.field(name), pa.array(decided[name], _DECIDED.field(name).type)
        )
    return out
