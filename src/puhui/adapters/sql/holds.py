"""Held records on SQL (spec v1.1, `domain.review`): what the signals read of the stored
records, the review queue's rows, and how a held record ends in one transaction: its receipt,
its hold row, its pending grams (posted to the citizen or voided back to the issuer, never
edited) and the statistics' tallies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, bindparam, insert, text

from puhui.adapters.sql import ledger, tallies
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.bulk import execute, fetch_arrow
from puhui.domain.reasons import Status
from puhui.domain.review import OpenHold, Resolution, final_reason

# The stored valid records the signals compare a chunk's records with.
SEEN_STORED = pa.schema(
    [
        ("seq", pa.int64()),
        ("platform_id", pa.int64()),
        ("citizen", pa.int64()),
        ("device", pa.string()),
        ("scene", pa.string()),
        ("region", pa.string()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("amount_milli", pa.int64()),
        ("extra", pa.string()),
    ]
)
BURST_HISTORY = pa.schema(
    [
        ("platform_id", pa.int64()),
        ("region", pa.string()),
        ("scene", pa.string()),
        ("minute", pa.int64()),
        ("n", pa.int64()),
    ]
)
HOLD_COLUMNS = (
    "record_seq",
    "platform_id",
    "reasons",
    "evidence",
    "policy",
    "grams",
    "held_at",
    "until",
)
# Bound parameters per statement when rows are looked up by seq.
_BATCH = 500

Keys = Callable[[str, Sequence[tuple[Any, ...]]], tuple[str, dict[str, Any]]]


def signal_history(
    conn: Connection,
    keys: Keys,
    citizens: Iterable[int],
    devices: Iterable[str],
    lo_ms: int,
    hi_ms: int,
) -> pa.Table:
    """Stored valid records (quantified: credited, held, duplicate, or held and then rejected)
    of these citizens or devices starting strictly between two instants. `keys` stages a key
    set (`IntakeStore._keys`)."""
    columns = (
        "r.seq, r.platform_id, r.subject_id, r.device, r.scene, r.region, r.start_ms, "
        "r.end_ms, r.amount_milli, r.extra"
    )
    where = "r.methodology is not null and r.start_ms > :lo and r.start_ms < :hi"
    by_citizen, params = keys("stage_subject_ids", [(c,) for c in sorted(set(citizens))])
    sql = f"select {columns} from records r join {by_citizen} k on r.subject_id = k.column1 "
    sql += f"where {where}"
    found = sorted(set(devices))
    if found:
        by_device, more = keys("stage_devices", [(d,) for d in found])
        sql += (
            f" union select {columns} from records r join {by_device} k "
            f"on r.device = k.column1 where {where}"
        )
        params = {**params, **more}
    return fetch_arrow(conn, sql, {**params, "lo": lo_ms, "hi": hi_ms}, SEEN_STORED)


def burst_history(
    conn: Connection,
    keys: Keys,
    platform_id: int,
    regions_scenes: Iterable[tuple[str, str]],
    lo_ms: int,
    hi_ms: int,
) -> pa.Table:
    """The platform's stored valid records per region, scene and start minute (epoch minutes),
    for these (region, scene) pairs, starting in [lo_ms, hi_ms)."""
    source, params = keys("stage_region_scenes", sorted(set(regions_scenes)))
    sql = (
        "select r.platform_id, r.region, r.scene, r.start_ms / 60000 as minute, count(*) "
        f"from records r join {source} k on r.region = k.column1 and r.scene = k.column2 "
        "where r.platform_id = :platform and r.start_ms >= :lo and r.start_ms < :hi "
        "and r.methodology is not null group by r.platform_id, r.region, r.scene, "
        "r.start_ms / 60000"
    )
    return fetch_arrow(
        conn, sql, {**params, "platform": platform_id, "lo": lo_ms, "hi": hi_ms}, BURST_HISTORY
    )


def write_holds(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Store why records were held (rows of HOLD_COLUMNS). Through the table's own types, so
    that their moments are kept as every other moment is (UTC, with microseconds)."""
    if rows:
        conn.execute(insert(t.holds), [dict(zip(HOLD_COLUMNS, row, strict=True)) for row in rows])


def open_holds(conn: Connection, seqs: Iterable[int]) -> list[OpenHold]:
    """The held records among these, not decided yet."""
    return [
        OpenHold(int(r[0]), r[1], tuple(r[2].split(";")), r[3], r[4])
        for r in _rows_of(
            conn,
            "select h.record_seq, p.code, h.reasons, h.policy, h.corroborated_by from holds h "
            "join platforms p on p.id = h.platform_id "
            "where h.decided_at is null and h.record_seq in ({keys})",
            seqs,
        )
    ]


def _rows_of(conn: Connection, sql: str, keys: Iterable[int]) -> list[Any]:
    """The rows of a query whose `{keys}` is a list of bound integers, run for _BATCH keys at a
    time."""
    wanted = sorted(set(keys))
    rows: list[Any] = []
    for i in range(0, len(wanted), _BATCH):
        names = {f"k{j}": k for j, k in enumerate(wanted[i : i + _BATCH])}
        found, _ = execute(conn, sql.format(keys=", ".join(":" + n for n in names)), names)
        rows += found
    return rows


_EXPIRING = text(
    "select h.record_seq, p.code, h.reasons, h.policy, h.corroborated_by from holds h "
    "join platforms p on p.id = h.platform_id where h.decided_at is null "
    "and h.until is not null and h.until <= :at and h.corroborated_by is null "
    "order by h.record_seq"
).bindparams(bindparam("at", type_=t.holds.c.until.type))


def expiring(conn: Connection, at: datetime) -> list[OpenHold]:
    """Held records still awaiting corroboration whose window ended by `at`."""
    rows = conn.execute(_EXPIRING, {"at": at.astimezone(UTC)}).all()
    return [OpenHold(int(r[0]), r[1], tuple(r[2].split(";")), r[3], r[4]) for r in rows]


def note_corroboration(conn: Connection, seq: int, by_seq: int) -> None:
    """Remember that an authority reported a held record's behaviour (a reviewer decides)."""
    conn.execute(
        text(
            "update holds set corroborated_by = :by where record_seq = :seq "
            "and decided_at is null and corroborated_by is null"
        ),
        {"seq": seq, "by": by_seq},
    )


def resolve(conn: Connection, resolutions: Sequence[Resolution], at: datetime) -> list[int]:
    """End held records in the current transaction; returns the seqs that ended (a record
    decided already, or not held, is left as it is).

    Its receipt takes the outcome's status and reason (`capped` kept), a rejected one's grams
    fall to 0; its hold row records the decision; its pending grams move out of the citizen's
    held account, to the citizen's account (`release`) or back to the issuing account
    (`void`), each naming the hold it settles; and the tallies follow."""
    at = at.astimezone(UTC)
    by_seq = {r.seq: r for r in resolutions}
    rows = _rows_of(
        conn,
        "select r.seq, r.reason, r.reduction_g, r.subject_id, r.platform_id, r.methodology, "
        "x.id, x.debit_account_id, x.credit_account_id, x.amount from records r "
        "join holds h on h.record_seq = r.seq and h.decided_at is null "
        "left join transfers x on x.record_seq = r.seq and x.kind = 'hold' "
        "where r.status = 'held' and r.seq in ({keys})",
        by_seq,
    )
    ended: list[int] = []
    changed: list[tuple[int, str, str, int]] = []
    if not rows:
        return ended
    # The receive order the decision takes effect at: records settled from this seq on no
    # longer count a rejected record towards their caps (`domain.review`). Taking the record
    # counter's row waits for the chunks settling now, and holds back those to come.
    decided_seq = conn.execute(
        text("update meta set value = value where key = 'next_record' returning value")
    ).scalar_one_or_none()
    receipts: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    moves: list[tuple[int, int, int, int, bool]] = []  # hold, from held, subject/issuer, g, credit
    for seq, reason, grams, subject, _platform, _methodology, hold, issuer, held, amount in sorted(
        rows
    ):
        decided = by_seq[seq]
        outcome = decided.outcome
        credited = outcome.status is Status.CREDITED
        capped = "capped" in (reason or "").split(";")
        receipts.append(
            {
                "status": outcome.status.value,
                "reason": final_reason(outcome, capped),
                "g": int(grams) if credited else 0,
                "seq": seq,
            }
        )
        decisions.append(
            {
                "outcome": outcome.status.value,
                "reason": outcome.reason.value,
                "by": decided.decided_by,
                "note": decided.note,
                "corroborated": decided.corroborated_by,
                "decided_seq": int(decided_seq or 1),
                "at": at,
                "seq": seq,
            }
        )
        if hold is not None:
            target = int(subject) if credited else int(issuer)
            moves.append((int(hold), int(held), target, int(amount), credited))
        ended.append(int(seq))
        changed.append((int(seq), Status.HELD.value, reason or "", int(grams)))
    conn.execute(_END_RECEIPT, receipts)
    conn.execute(_DECIDE, decisions)
    _settle_pending(conn, moves, at)
    tallies.resolve(conn, changed)
    return ended


_END_RECEIPT = text(
    "update records set status = :status, reason = :reason, reduction_g = :g "
    "where seq = :seq and status = 'held'"
)
_DECIDE = text(
    "update holds set decided_at = :at, decided_seq = :decided_seq, "
    "outcome = :outcome, outcome_reason = :reason, decided_by = :by, note = :note, "
    "corroborated_by = coalesce(corroborated_by, :corroborated) "
    "where record_seq = :seq and decided_at is null"
).bindparams(bindparam("at", type_=t.holds.c.decided_at.type))
_SETTLE = text(
    "insert into transfers (kind, debit_account_id, credit_account_id, amount, reverses, "
    "created_at, commit_id) values (:kind, :debit, :credit, :amount, :reverses, :at, :commit)"
).bindparams(bindparam("at", type_=t.transfers.c.created_at.type))


def _settle_pending(
    conn: Connection, moves: Sequence[tuple[int, int, int, int, bool]], at: datetime
) -> None:
    """Post or void pending holds: (hold id, held account, citizen's subject id (posted) or
    issuing account (voided), amount, posted). One transfer each, naming the hold it settles
    in `reverses`; balances change once per account, in the ledger's lock order."""
    if not moves:
        return
    subjects = sorted({target for _, _, target, _, posted in moves if posted})
    citizens: dict[int, int] = {}
    if subjects:
        conn.execute(
            text(
                "insert into accounts (kind, subject_id) values ('citizen', :s) "
                "on conflict do nothing"
            ),
            [{"s": s} for s in subjects],
        )
        found = _rows_of(
            conn,
            "select subject_id, id from accounts where kind = 'citizen' and subject_id in ({keys})",
            subjects,
        )
        citizens.update({int(s): int(a) for s, a in found})
    commit = ledger.commit_id(conn, at)
    rows = []
    totals: dict[int, int] = {}
    kinds: dict[int, str] = {}
    for hold, held, target, amount, posted in moves:
        credit = citizens[target] if posted else target
        rows.append(
            {
                "kind": "release" if posted else "void",
                "debit": held,
                "credit": credit,
                "amount": amount,
                "reverses": hold,
                "at": at,
                "commit": commit,
            }
        )
        totals[held] = totals.get(held, 0) - amount
        totals[credit] = totals.get(credit, 0) + amount
        kinds[held], kinds[credit] = "held", "citizen" if posted else "issuance"
    conn.execute(_SETTLE, rows)
    ledger.apply_balances(conn, [(a, g, kinds[a] == "held") for a, g in totals.items() if g], kinds)


def evidence_json(measured: dict[str, dict[str, Any]]) -> str:
    """The evidence column: what each signal measured and how it reads, by code."""
    return json.dumps(measured, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
