"""The read side on SQL: citizens' accounts and their history, platforms' receipts, and the
stored inputs of a credit's calculation (`service.queries` and `service.citizens` make of them
what people see)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text

from puhui.adapters.sql import ledger
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.intake import IntakeStore

# The record a leg of a citizen's account is for (as `r`, joined after `legs(...) p`): a
# credit's own; for a `release` (a held record's grams posted to the citizen once it was
# decided), the record of the `hold` it settles (`transfers.reverses`), so that it shows with
# the record's platform, scene and date like a credit.
_RECORD_OF_LEG = (
    "left join transfers rx on p.kind = 'release' and rx.id = p.id "
    "left join transfers hx on hx.id = rx.reverses "
    "left join records r on r.seq = coalesce(p.record_seq, hx.record_seq) "
)

# What the `restated` transfers among some of a citizen's legs adjust: per transfer, the
# restatement, its target version, the posting's net change, its platform, and each credit it
# posts (the credit's own entry, record id, scene, methodology before and now, grams before and
# now, start of the behaviour). Read from the citizen's records (indexed by subject), each
# restated credit by its record, and its posting by id.
_ADJUSTMENTS = (
    "select rp.transfer_id, rp.restatement_id, rs.methodology, rp.delta_g, pl.code, "
    "(select c.id from transfers c where c.record_seq = r.seq and c.kind = 'credit'), "
    "r.record_id, r.scene, qb.methodology, x.methodology, x.grams_before, x.grams, r.start_ms "
    "from records r join restated_credits x on x.record_seq = r.seq "
    "join restatement_postings rp on rp.id = x.posting_id "
    "join restatements rs on rs.id = rp.restatement_id "
    "join platforms pl on pl.id = rp.platform_id "
    "join quantifications qb on qb.id = x.before_quantification_id "
    "where r.subject_id = :s and rp.transfer_id in :t order by rp.transfer_id, r.seq"
)


class SqlReads:
    """Implements `service.ports.Reads` on a database engine, one read transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def account(self, pseudonym: str, limit: int) -> tuple[int, list[tuple[Any, ...]]] | None:
        """The grams of a citizen's account and its latest movements of grams, newest first:
        (transfer id, at, kind, grams ±, platform, record id, scene, methodology, start of the
        behaviour in epoch ms, adjustment), read in one transaction; None when the citizen has
        no account. `adjustment` is what a `restated` movement adjusts (`_adjusted`), else
        None; such a movement shows its platform, its target version as methodology, and the
        scene of its credits when they share one."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "select a.id, coalesce(b.balance_g, 0), a.subject_id from accounts a "
                    "join subjects s on s.id = a.subject_id "
                    "left join balances b on b.account_id = a.id where s.pseudonym = :p"
                ),
                {"p": pseudonym},
            ).one_or_none()
            if row is None:
                return None
            lines = conn.execute(
                text(
                    "select p.id, p.created_at, p.kind, p.amount_g, pl.code, r.record_id, "
                    f"r.scene, r.methodology, r.start_ms from {ledger.legs(':a')} p "
                    + _RECORD_OF_LEG
                    + "left join platforms pl on pl.id = r.platform_id "
                    "order by p.id desc limit :n"
                ),
                {"a": row[0], "n": limit},
            ).all()
            adjusted = _adjusted(conn, row[2], [line for line in lines if line[2] == "restated"])
        return int(row[1]), [
            _with_adjustment(tuple(line), adjusted.get(int(line[0])), platform=4, scene=6,
                             methodology=7)
            for line in lines
        ]  # fmt: skip

    def history(self, pseudonym: str, before: int, limit: int) -> list[tuple[Any, ...]]:
        """(transfer id, at, kind, amount ±, unit, account code, platform, scene, methodology,
        record id, start of the behaviour in epoch ms, adjustment) of the movements of a
        citizen's grams and points with ids below `before`, newest first. `adjustment` is what a
        `restated` movement adjusts (`_adjusted`), else None; such a movement shows its
        platform, its target version as methodology, and the scene of its credits when they
        share one."""
        with self.engine.connect() as conn:
            # The citizen's own accounts first: their ids bound, each side of the ledger is
            # then read through its index, newest first, however large the ledger.
            accounts = (
                conn.execute(
                    text(
                        "select y.id from accounts y join subjects s on s.id = y.subject_id "
                        "where s.pseudonym = :p union all "
                        "select y.id from accounts y join subjects s on s.id = y.owner_id "
                        "where s.pseudonym = :p and y.kind = 'points'"
                    ),
                    {"p": pseudonym},
                )
                .scalars()
                .all()
            )
            if not accounts:
                return []
            ids = {f"a{i}": int(a) for i, a in enumerate(accounts)}
            rows = [
                tuple(row)
                for row in conn.execute(
                    text(
                        "select p.id, p.created_at, p.kind, p.amount_g, a.unit, a.code, pl.code, "
                        "r.scene, r.methodology, r.record_id, r.start_ms from "
                        + ledger.legs(", ".join(f":{k}" for k in ids), "x.id < :before")
                        + " p join accounts a on a.id = p.account_id "
                        + _RECORD_OF_LEG
                        + "left join platforms pl on pl.id = r.platform_id "
                        "order by p.id desc limit :n"
                    ),
                    {**ids, "before": before, "n": limit},
                ).all()
            ]
            restated = [row for row in rows if row[2] == "restated"]
            adjusted: dict[int, tuple[Any, ...]] = {}
            if restated:
                subject = conn.execute(
                    select(t.subjects.c.id).where(t.subjects.c.pseudonym == pseudonym)
                ).scalar()
                adjusted = _adjusted(conn, subject, restated)
        return [
            _with_adjustment(row, adjusted.get(int(row[0])), platform=6, scene=7, methodology=8)
            for row in rows
        ]

    def holdings(self, pseudonym: str) -> list[tuple[str, str | None, int]] | None:
        """(kind, code, balance) of every account a citizen owns (grams, retired grams, points
        by programme); None for a stranger."""
        with self.engine.connect() as conn:
            subject_id = conn.execute(
                select(t.subjects.c.id).where(t.subjects.c.pseudonym == pseudonym)
            ).scalar_one_or_none()
            if subject_id is None:
                return None
            rows = conn.execute(
                text(
                    "select a.kind, a.code, coalesce(b.balance_g, 0) from accounts a "
                    "left join balances b on b.account_id = a.id "
                    "where a.subject_id = :s or a.owner_id = :s"
                ),
                {"s": subject_id},
            ).all()
        return [(str(kind), code, int(held)) for kind, code, held in rows]

    def operations(self, pseudonym: str, limit: int) -> list[tuple[Any, ...]]:
        """(id, kind, actor, at, result JSON) of a citizen's operations, newest first."""
        o, s = t.operations, t.subjects
        with self.engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    select(o.c.id, o.c.kind, o.c.actor, o.c.created_at, o.c.result)
                    .select_from(o.join(s, s.c.id == o.c.subject_id))
                    .where(s.c.pseudonym == pseudonym)
                    .order_by(o.c.id.desc())
                    .limit(limit)
                ).all()
            ]

    def operation(self, operation: int) -> tuple[Any, ...] | None:
        """(kind, at, result JSON) of an operation; None when there is none."""
        o = t.operations
        with self.engine.connect() as conn:
            row = conn.execute(
                select(o.c.kind, o.c.created_at, o.c.result).where(o.c.id == operation)
            ).one_or_none()
        return None if row is None else tuple(row)

    def credit(self, pseudonym: str, transfer_id: int) -> tuple[str, str] | None:
        """(platform, record id) of the record a credit to this citizen was for."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "select pl.code, r.record_id from transfers x "
                    "join accounts a on a.id = x.credit_account_id "
                    "join subjects s on s.id = a.subject_id "
                    "join records r on r.seq = x.record_seq "
                    "join platforms pl on pl.id = r.platform_id "
                    "where s.pseudonym = :p and x.id = :entry"
                ),
                {"p": pseudonym, "entry": transfer_id},
            ).one_or_none()
        return None if row is None else (str(row[0]), str(row[1]))

    def receipts(self, platform: str) -> Iterator[tuple[Any, ...]]:
        """(record id, status, reason, grams, methodology, detail, decided at) of every stored
        record of a platform, in receive order, streamed; `decided at` when a held record was
        decided, else None (NotFoundError: no such platform)."""
        with self.engine.connect() as conn:
            platform_id = IntakeStore(conn).platform_id(platform)
            r = t.records.c
            h = t.holds.c
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
                select(
                    r.record_id,
                    r.status,
                    r.reason,
                    r.reduction_g,
                    r.methodology,
                    r.detail,
                    h.decided_at,
                )
                .outerjoin(t.holds, h.record_seq == r.seq)
                .where(r.platform_id == platform_id)
                .order_by(r.seq)
            )
            for row in result:
                yield tuple(row)

    def receipts_page(
        self,
        platform: str,
        after: int,
        limit: int,
        received_from: datetime | None,
        received_to: datetime | None,
        record_id: str | None,
    ) -> list[tuple[Any, ...]]:
        """(seq, record id, status, reason, grams, methodology, detail, received at, decided
        at) of a platform's records numbered above `after`, received in [received_from,
        received_to) when given, in receive order; `decided at` when a held record was decided,
        else None (NotFoundError: no such platform)."""
        r = t.records.c
        b = t.batches.c
        h = t.holds.c
        query = (
            select(
                r.seq,
                r.record_id,
                r.status,
                r.reason,
                r.reduction_g,
                r.methodology,
                r.detail,
                b.received_at,
                h.decided_at,
            )
            .join(t.batches, b.id == r.batch_id)
            .outerjoin(t.holds, h.record_seq == r.seq)
            .where(r.seq > after)
            .order_by(r.seq)
            .limit(limit)
        )
        if record_id is not None:
            query = query.where(r.record_id == record_id)
        if received_from is not None:
            query = query.where(b.received_at >= received_from)
        if received_to is not None:
            query = query.where(b.received_at < received_to)
        with self.engine.connect() as conn:
            platform_id = IntakeStore(conn).platform_id(platform)
            return [tuple(row) for row in conn.execute(query.where(r.platform_id == platform_id))]

    def calculation(self, platform: str, record_id: str) -> tuple[Any, ...] | None:
        """(status, reason, scene, region, material, start ms, amount × 1000, grams, trace,
        unit) of a stored record, None when there is none."""
        r = t.records.c
        q = t.quantifications.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    r.status,
                    r.reason,
                    r.scene,
                    r.region,
                    r.material,
                    r.start_ms,
                    r.amount_milli,
                    r.reduction_g,
                    q.trace,
                    q.unit,
                )
                .select_from(
                    t.records.join(t.platforms, t.platforms.c.id == r.platform_id).outerjoin(
                        t.quantifications, q.id == r.quantification_id
                    )
                )
                .where(t.platforms.c.code == platform, r.record_id == record_id)
            ).one_or_none()
        return None if row is None else tuple(row)


def _adjusted(conn: Connection, subject: Any, restated: list[Any]) -> dict[int, tuple[Any, ...]]:
    """By transfer id, what each `restated` transfer of a citizen's adjusts: (restatement id,
    target version, net change of its credits in grams (what moved may be less: an account
    never goes below zero), platform, credits), each credit (entry id of its credit or None,
    record id, scene, methodology before, methodology now, grams before, grams now, start of
    the behaviour in epoch ms), in receive order."""
    if not restated or subject is None:
        return {}
    found: dict[int, tuple[Any, ...]] = {}
    for row in conn.execute(
        text(_ADJUSTMENTS).bindparams(bindparam("t", expanding=True)),
        {"s": int(subject), "t": sorted({int(r[0]) for r in restated})},
    ):
        transfer = int(row[0])
        if transfer not in found:
            found[transfer] = (int(row[1]), str(row[2]), int(row[3]), str(row[4]), [])
        found[transfer][4].append(
            (
                None if row[5] is None else int(row[5]),
                row[6],
                row[7],
                row[8],
                row[9],
                int(row[10]),
                int(row[11]),
                row[12],
            )
        )
    return found


def _with_adjustment(
    row: tuple[Any, ...],
    adjustment: tuple[Any, ...] | None,
    *,
    platform: int,
    scene: int,
    methodology: int,
) -> tuple[Any, ...]:
    """A movement with what it adjusts appended (None for any but a `restated` one), and for a
    `restated` one its platform, target version and the scene of its credits when they share
    one filled in at the positions given."""
    if adjustment is None:
        return (*row, None)
    filled = list(row)
    filled[platform] = adjustment[3]
    filled[methodology] = adjustment[1]
    scenes = {credit[2] for credit in adjustment[4]}
    filled[scene] = scenes.pop() if len(scenes) == 1 else None
    return (*filled, adjustment)
