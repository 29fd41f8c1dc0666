"""Restatements on SQL: the credits a correction of a methodology changes, settled again by
`domain.restatement` one citizen's scene at a time, and the differences posted on the ledger.

A run reads the citizens with credits of the superseded versions, a chunk of citizens at a
time (`CHUNK`), and writes each chunk in one transaction: the new calculations (rows of
`quantifications`, as intake stores them), one `restated_credits` row per credit changed, and
one `restated` transfer per account and platform that moves grams:

- a credit not certified: between the citizen's account and its platform's issuance account for
  the target version; a decrease takes at most what the account holds (what it cannot is the
  posting's shortfall: the account never goes below zero);
- a certified credit (docs/market.md): between the buffer of the last batch holding part of it
  (the pool, while none does) and that issuance account: a batch's units stay as issued, and its
  buffer absorbs the difference both ways; a decrease takes at most what the buffer holds.

A chunk committed stays: a run stopped halfway is resumed by running it again, which finds the
chunks done with nothing left to change. A dry run does the same work in one transaction and
rolls it back, so its figures are what a run would post.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, text, update

from puhui.adapters.batch.prepare import calculation_row, quantification_key
from puhui.adapters.sql import accounts, ledger
from puhui.adapters.sql import tables as t
from puhui.domain import china_time
from puhui.domain.errors import MethodologyError
from puhui.domain.methodology import Catalogue, Methodology
from puhui.domain.restatement import Basis, Change, Credit, restate
from puhui.domain.settlement import NO_CAPS, Caps, caps_of

# A stored calculation's columns, as `adapters.sql.recompute.rederive` checks them.
_CALCULATION = (
    "q.digest, q.methodology, q.scene, q.region, q.material, q.unit, q.reduction_per_unit, q.trace"
)

# Citizens settled again per transaction.
CHUNK = 2_000

# A citizen's records a restatement reads: credits, held records, and held records rejected
# since (they counted towards caps until their decision), with whether a credit was reversed.
_RECORDS = (
    "select r.seq, r.subject_id, r.scene, r.region, r.material, r.start_ms, r.amount_milli, "
    "r.reduction_g, r.methodology, r.quantification_id, r.status, r.platform_id, h.grams, "
    "h.decided_seq, "
    "case when exists (select 1 from transfers x join transfers y on y.reverses = x.id "
    "where x.record_seq = r.seq and x.kind = 'credit') "
    "or exists (select 1 from transfers x join transfers p on p.reverses = x.id "
    "join transfers y on y.reverses = p.id where x.record_seq = r.seq and x.kind = 'hold') "
    "or exists (select 1 from buffer_draws d where d.record_seq = r.seq) "
    "then 1 else 0 end as reversed "
    "from records r left join holds h on h.record_seq = r.seq "
    "where r.subject_id in :s{scenes} and (r.status = 'credited' or r.status = 'held' "
    "or ((r.status = 'rejected' or r.status = 'duplicate') and h.record_seq is not null)) "
    "order by r.subject_id, r.scene, r.seq"
)


@dataclass
class Tally:
    """What a restatement changed (or, dry, would change) for one region and scene."""

    credits: int = 0
    increased_g: int = 0
    decreased_g: int = 0


@dataclass
class Outcome:
    """What a run did: the restatement, its figures, and what it left for later."""

    restatement: int
    methodology: str
    superseded: tuple[str, ...]
    dry_run: bool
    finished: bool = False
    citizens: int = 0
    recalculated: int = 0
    posted_g: int = 0
    shortfall_g: int = 0
    waiting: int = 0
    by_place: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))

    @property
    def credits(self) -> int:
        """Credits whose grams changed."""
        return sum(v.credits for v in self.by_place.values())

    @property
    def delta_g(self) -> int:
        """The credits' change in grams, signed."""
        return sum(v.increased_g - v.decreased_g for v in self.by_place.values())

    def as_dict(self) -> dict[str, Any]:
        """As the CLI and the API show it."""
        return {
            "restatement": self.restatement,
            "methodology": self.methodology,
            "superseded": list(self.superseded),
            "dry_run": self.dry_run,
            "finished": self.finished,
            "citizens": self.citizens,
            "credits": self.credits,
            "recalculated": self.recalculated,
            "delta_g": self.delta_g,
            "posted_g": self.posted_g,
            "shortfall_g": self.shortfall_g,
            "waiting": self.waiting,
            "by_place": [
                {"region": region, "scene": scene, **vars(tally)}
                for (region, scene), tally in sorted(self.by_place.items())
            ],
        }


@dataclass(frozen=True, slots=True)
class Row:
    """A record as read, with what computes it now."""

    credit: Credit
    subject: int
    scene: str
    region: str
    material: str
    platform: int
    held: bool


class SqlRestatements:
    """Implements `service.ports.Restatements`."""

    def __init__(self, engine: Engine, catalogue: Catalogue) -> None:
        self.engine = engine
        self.catalogue = catalogue

    def listing(self) -> list[dict[str, Any]]:
        """Every restatement with its totals, oldest first."""
        with self.engine.connect() as conn:
            return list(restatements(conn))

    def of_record(self, platform: str, record_id: str) -> list[dict[str, Any]]:
        """A record's restatements, oldest first."""
        with self.engine.connect() as conn:
            return [
                {
                    "restatement": int(row[0]),
                    "methodology": row[1],
                    "grams_before": int(row[2]),
                    "grams": int(row[3]),
                    "at": row[4],
                    "trace": row[-1],
                    "calculation": tuple(row[5:]),
                }
                for row in conn.execute(
                    text(
                        "select x.restatement_id, x.methodology, x.grams_before, x.grams, x.at, "
                        f"{_CALCULATION} from restated_credits x "
                        "join records r on r.seq = x.record_seq "
                        "join platforms p on p.id = r.platform_id "
                        "join quantifications q on q.id = x.quantification_id "
                        "where p.code = :p and r.record_id = :r order by x.id"
                    ),
                    {"p": platform, "r": record_id},
                )
            ]

    def stored(self, platform: str, record_id: str) -> tuple[Any, ...] | None:
        """(amount × 1000, grams, (digest, methodology, scene, region, material, unit,
        reduction per unit, trace)) of a quantified record as received; None without one."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"select r.amount_milli, r.reduction_g, {_CALCULATION} from records r "
                    "join platforms p on p.id = r.platform_id "
                    "join quantifications q on q.id = r.quantification_id "
                    "where p.code = :p and r.record_id = :r and r.amount_milli is not null"
                ),
                {"p": platform, "r": record_id},
            ).one_or_none()
        return None if row is None else (row[0], row[1], tuple(row[2:]))

    def restate(self, target: Methodology, actor: str, at: datetime, dry_run: bool) -> Outcome:
        """Restate every credit of the versions `target` supersedes that it applies to."""
        superseded = tuple(m.ref for m in self.catalogue.superseded_by(target.ref))
        if dry_run:
            with self.engine.connect() as conn:
                transaction = conn.begin()
                try:
                    return self._dry_run(conn, target, superseded, actor, at)
                finally:
                    transaction.rollback()
        with self.engine.begin() as conn:
            restatement = _restatement(conn, target.ref, superseded, actor, at)
            subjects = _subjects(conn, superseded)
        out = Outcome(restatement, target.ref, superseded, dry_run=False)
        for i in range(0, len(subjects), CHUNK):
            with self.engine.begin() as conn:
                self._chunk(conn, out, target, subjects[i : i + CHUNK], at)
        with self.engine.begin() as conn:
            out.finished = out.waiting == 0
            if out.finished:
                conn.execute(
                    update(t.restatements)
                    .where(t.restatements.c.id == restatement)
                    .where(t.restatements.c.finished_at.is_(None))
                    .values(finished_at=at)
                )
        return out

    def _dry_run(
        self,
        conn: Connection,
        target: Methodology,
        superseded: tuple[str, ...],
        actor: str,
        at: datetime,
    ) -> Outcome:
        """The whole run in the caller's transaction, which rolls it back."""
        restatement = _restatement(conn, target.ref, superseded, actor, at)
        subjects = _subjects(conn, superseded)
        out = Outcome(restatement, target.ref, superseded, dry_run=True)
        for i in range(0, len(subjects), CHUNK):
            self._chunk(conn, out, target, subjects[i : i + CHUNK], at)
        out.finished = out.waiting == 0
        return out

    # One chunk of citizens ---------------------------------------------------------------------

    def _chunk(
        self, conn: Connection, out: Outcome, target: Methodology, subjects: list[int], at: datetime
    ) -> None:
        rows = read_records(conn, subjects, self.catalogue, sorted(target.scenes))
        calculations = _Calculations(conn, self.catalogue)
        certified = certified_accounts(conn, [r.credit.seq for r in rows])
        after_seq = int(
            conn.execute(text("select coalesce(max(seq), 0) from records")).scalar_one()
        )
        superseded = set(out.superseded)
        changes: list[tuple[Row, Change]] = []
        touched: set[int] = set()
        group: list[Row] = []

        def settle(group: list[Row]) -> None:
            if not any(r.credit.basis.methodology in superseded for r in group):
                return
            if any(r.held for r in group):
                out.waiting += 1
                return
            by_seq = {r.credit.seq: r for r in group}

            def retarget(c: Credit) -> Basis | None:
                row = by_seq[c.seq]
                if c.basis.methodology not in superseded or not self._applies(target, row):
                    return None
                return calculations.basis(target, row.scene, row.region, row.material)

            for change in restate([r.credit for r in group], retarget):
                changes.append((by_seq[change.seq], change))
                if change.delta_g:
                    touched.add(by_seq[change.seq].subject)

        for row in rows:
            if group and (group[0].subject, group[0].scene) != (row.subject, row.scene):
                settle(group)
                group = []
            group.append(row)
        settle(group)
        out.citizens += len(touched)
        self._write(conn, out, target, changes, certified, after_seq, at)

    def _applies(self, target: Methodology, row: Row) -> bool:
        """Whether the target computes this record: it covers its scene and a place of its
        region's chain, and is in force on its day (a correction: every day of the version it
        corrects)."""
        if row.scene not in target.scenes:
            return False
        chain = self.catalogue.regions.chain(row.region)
        if not set(chain) & set(target.jurisdiction):
            return False
        return target.retroactive or target.in_force(row.credit.day)

    def _write(
        self,
        conn: Connection,
        out: Outcome,
        target: Methodology,
        changes: list[tuple[Row, Change]],
        certified: dict[int, int],
        after_seq: int,
        at: datetime,
    ) -> None:
        """Post a chunk's changes and record them, a statement per table."""
        if not changes:
            return
        # Where each change is posted: the citizen's account, or its batch's buffer (pool).
        citizens = _citizen_accounts(conn, sorted({r.subject for r, c in changes if c.delta_g}))
        where: dict[tuple[int, int], list[Change]] = defaultdict(list)
        for row, change in changes:
            if change.delta_g:
                account = certified.get(row.credit.seq, citizens.get(row.subject))
                assert account is not None, "a credited citizen has an account"
                where[(account, row.platform)].append(change)
        keys = sorted(where)
        deltas = [sum(c.delta_g for c in where[k]) for k in keys]
        # A decrease takes at most what the account holds: it never goes below zero.
        held = _balances(conn, sorted({a for (a, _), d in zip(keys, deltas, strict=True) if d < 0}))
        posted = [
            d if d >= 0 else -min(-d, held.get(a, 0))
            for (a, _), d in zip(keys, deltas, strict=True)
        ]
        issuance = {p: _issuance(conn, p, target.ref) for p in sorted({p for _, p in keys})}
        moving = [i for i, g in enumerate(posted) if g]
        transfers = dict(
            zip(
                moving,
                ledger.post_transfers(
                    conn,
                    "restated",
                    [
                        (issuance[keys[i][1]], keys[i][0], posted[i])
                        if posted[i] > 0
                        else (keys[i][0], issuance[keys[i][1]], -posted[i])
                        for i in moving
                    ],
                    at,
                    guarded={keys[i][0] for i in moving if posted[i] < 0},
                ),
                strict=True,
            )
        )
        ids = _insert_returning(
            conn,
            t.restatement_postings,
            [
                {
                    "restatement_id": out.restatement,
                    "account_id": account,
                    "platform_id": platform,
                    "delta_g": deltas[i],
                    "posted_g": posted[i],
                    "transfer_id": transfers.get(i),
                }
                for i, (account, platform) in enumerate(keys)
            ],
        )
        postings = {c.seq: ids[i] for i, k in enumerate(keys) for c in where[k]}
        out.posted_g += sum(posted)
        out.shortfall_g += sum(posted) - sum(deltas)
        conn.execute(
            insert(t.restated_credits),
            [
                {
                    "restatement_id": out.restatement,
                    "record_seq": change.seq,
                    "posting_id": postings.get(change.seq),
                    "before_quantification_id": int(str(change.before.calculation)),
                    "quantification_id": int(str(change.after.calculation)),
                    "methodology": change.after.methodology,
                    "grams_before": change.grams_before,
                    "grams": change.grams,
                    "after_seq": after_seq,
                    "at": at,
                }
                for _, change in changes
            ],
        )
        for row, change in changes:
            if change.after.calculation != change.before.calculation:
                out.recalculated += 1
            if change.delta_g:
                tally = out.by_place[(row.region, row.scene)]
                tally.credits += 1
                if change.delta_g > 0:
                    tally.increased_g += change.delta_g
                else:
                    tally.decreased_g -= change.delta_g


def _insert_returning(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows in one statement; their ids, in the rows' order."""
    if not rows:
        return []
    return [
        int(i)
        for i in conn.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        ).scalars()
    ]


def _citizen_accounts(conn: Connection, subjects: list[int]) -> dict[int, int]:
    """The grams accounts of citizens, by citizen (opened for those without one)."""
    found: dict[int, int] = {}
    for i in range(0, len(subjects), 5_000):
        part = subjects[i : i + 5_000]
        found |= {
            int(s): int(a)
            for s, a in conn.execute(
                select(t.accounts.c.subject_id, t.accounts.c.id).where(
                    t.accounts.c.subject_id.in_(part)
                )
            )
        }
    for subject in subjects:
        if subject not in found:
            opened = accounts.citizen(conn, subject)
            assert opened is not None, "opened if missing"
            found[subject] = opened
    return found


def _balances(conn: Connection, accounts_: list[int]) -> dict[int, int]:
    """What accounts hold, their balance rows locked until the transaction ends (PostgreSQL;
    SQLite has one writer at a time), in id order: the ledger's lock order."""
    held: dict[int, int] = {}
    for i in range(0, len(accounts_), 5_000):
        query = (
            select(t.balances.c.account_id, t.balances.c.balance_g)
            .where(t.balances.c.account_id.in_(accounts_[i : i + 5_000]))
            .order_by(t.balances.c.account_id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        held |= {int(a): int(g) for a, g in conn.execute(query)}
    return held


class _Calculations:
    """The target version's calculations of a chunk, stored on first use as intake stores
    them (one row per methodology version, scene, region and material)."""

    def __init__(self, conn: Connection, catalogue: Catalogue) -> None:
        self.conn = conn
        self.catalogue = catalogue
        self.targets: dict[tuple[str, str, str, str], Basis] = {}

    def basis(self, m: Methodology, scene: str, region: str, material: str) -> Basis:
        key = (m.ref, scene, region, material)
        if key not in self.targets:
            computed = self.catalogue.calculate(m, scene, region, material)
            digest = quantification_key(computed)
            q = t.quantifications
            qid = self.conn.execute(select(q.c.id).where(q.c.digest == digest)).scalar()
            if qid is None:
                columns, trace = calculation_row(computed)
                qid = self.conn.execute(
                    insert(q).values(digest=digest, trace=trace, **columns).returning(q.c.id)
                ).scalar_one()
            self.targets[key] = Basis(
                int(qid), m.ref, computed.reduction_g, caps_of(m.scenes[scene])
            )
        return self.targets[key]


def _restatement(
    conn: Connection, target: str, superseded: tuple[str, ...], actor: str, at: datetime
) -> int:
    """The restatement to a version: the one begun before (resumed), or a new one."""
    r = t.restatements
    found = conn.execute(select(r.c.id).where(r.c.methodology == target)).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            insert(r)
            .values(
                methodology=target, superseded=", ".join(superseded), actor=actor, started_at=at
            )
            .returning(r.c.id)
        ).scalar_one()
    )


def _subjects(conn: Connection, superseded: tuple[str, ...]) -> list[int]:
    """The citizens with a record computed by a superseded version now, credited or held:
    received under it and never restated, or restated to it last; in id order. (Once a
    restatement is done, none is left: running it again reads nothing.)"""
    if not superseded:
        return []
    found = conn.execute(
        text(
            "select distinct r.subject_id from records r where r.methodology in :m "
            "and (r.status = 'credited' or r.status = 'held') and r.subject_id is not null "
            "and not exists (select 1 from restated_credits x where x.record_seq = r.seq) "
            "union select r.subject_id from restated_credits x join records r "
            "on r.seq = x.record_seq where x.methodology in :m and not exists "
            "(select 1 from restated_credits y where y.record_seq = x.record_seq "
            "and y.id > x.id)"
        ).bindparams(bindparam("m", expanding=True)),
        {"m": list(superseded)},
    ).all()
    return sorted({int(s) for (s,) in found})


def read_records(
    conn: Connection,
    subjects: list[int],
    catalogue: Catalogue,
    scenes: Sequence[str] | None = None,
) -> list[Row]:
    """The records of citizens (of some scenes only, if given), by citizen, scene and receive
    order, as they stand now: each one's latest restatement, if any, over its receipt."""
    sql = text(_RECORDS.format(scenes="" if scenes is None else " and r.scene in :scenes"))
    params: dict[str, Any] = {"s": subjects}
    sql = sql.bindparams(bindparam("s", expanding=True))
    if scenes is not None:
        sql = sql.bindparams(bindparam("scenes", expanding=True))
        params["scenes"] = list(scenes)
    raw = conn.execute(sql, params).all()
    now: dict[int, tuple[int, str, int]] = {}
    for seq, qid, ref, grams in conn.execute(
        text(
            "select x.record_seq, x.quantification_id, x.methodology, x.grams "
            "from restated_credits x join records r on r.seq = x.record_seq "
            "where r.subject_id in :s order by x.id"
        ).bindparams(bindparam("s", expanding=True)),
        {"s": subjects},
    ):
        now[int(seq)] = (int(qid), str(ref), int(grams))
    calculations: dict[int, Decimal] = {}
    traces = {
        int(qid): trace
        for qid, trace in conn.execute(
            text("select id, trace from quantifications where id in :q").bindparams(
                bindparam("q", expanding=True)
            ),
            {"q": sorted({int(r.quantification_id) for r in raw if r.quantification_id}
                         | {q for q, _, _ in now.values()})},
        )
    }  # fmt: skip
    for qid, trace in traces.items():
        calculations[qid] = Decimal(json.loads(trace)["reduction_g"])
    caps: dict[tuple[str, str], Caps] = {}
    rows = []
    for r in raw:
        if r.quantification_id is None or r.start_ms is None or r.amount_milli is None:
            continue
        qid, ref, grams = now.get(int(r.seq), (int(r.quantification_id), r.methodology,
                                               int(r.reduction_g)))  # fmt: skip
        rejected = r.status in ("rejected", "duplicate")
        if rejected:
            grams = int(r.grams)
        key = (ref, r.scene)
        if key not in caps:
            try:
                caps[key] = caps_of(catalogue.get(ref).scenes[r.scene])
            except (MethodologyError, KeyError):
                caps[key] = NO_CAPS
        credit = Credit(
            seq=int(r.seq),
            day=china_time.day_of_ms(int(r.start_ms)),
            amount_milli=int(r.amount_milli),
            basis=Basis(qid, ref, calculations[qid], caps[key]),
            grams=grams,
            counts_until=int(r.decided_seq) if rejected and r.decided_seq is not None else None,
            kept=bool(r.reversed) or (rejected and r.decided_seq is None),
        )
        rows.append(
            Row(
                credit,
                int(r.subject_id),
                r.scene,
                r.region,
                r.material or "",
                int(r.platform_id),
                r.status == "held",
            )
        )
    return rows


def certified_accounts(conn: Connection, seqs: list[int]) -> dict[int, int]:
    """For certified credits among these records: the account their changes go through, the
    buffer of the last batch holding part of them, or their pool while none does."""
    found: dict[int, int] = {}
    for i in range(0, len(seqs), 5_000):
        part = seqs[i : i + 5_000]
        for seq, pool, buffer in conn.execute(
            text(
                "select p.record_seq, p.pool_account_id, (select u.buffer_account_id "
                "from batch_credits c join unit_batches u on u.id = c.batch_id "
                "where c.record_seq = p.record_seq order by c.batch_id desc limit 1) "
                "from pool_credits p where p.record_seq in :s"
            ).bindparams(bindparam("s", expanding=True)),
            {"s": part},
        ):
            found[int(seq)] = int(buffer if buffer is not None else pool)
    return found


def _issuance(conn: Connection, platform: int, methodology: str) -> int:
    """A platform's issuance account for a methodology version, opened if missing."""
    a = t.accounts
    found = conn.execute(
        select(a.c.id).where(a.c.platform_id == platform, a.c.methodology == methodology)
    ).scalar()
    if found is None:
        found = conn.execute(
            insert(a)
            .values(kind="issuance", platform_id=platform, methodology=methodology)
            .returning(a.c.id)
        ).scalar_one()
    return int(found)


def restatements(conn: Connection) -> Iterator[dict[str, Any]]:
    """Every restatement with its totals: credits changed, grams up and down, posted, short."""
    for row in conn.execute(
        text(
            "select s.id, s.methodology, s.superseded, s.actor, s.started_at, s.finished_at, "
            "(select count(*) from restated_credits x where x.restatement_id = s.id "
            "and x.grams <> x.grams_before), "
            "(select count(*) from restated_credits x where x.restatement_id = s.id), "
            "(select coalesce(sum(x.grams - x.grams_before), 0) from restated_credits x "
            "where x.restatement_id = s.id and x.grams > x.grams_before), "
            "(select coalesce(sum(x.grams_before - x.grams), 0) from restated_credits x "
            "where x.restatement_id = s.id and x.grams < x.grams_before), "
            "(select coalesce(sum(p.posted_g), 0) from restatement_postings p "
            "where p.restatement_id = s.id), "
            "(select coalesce(sum(p.posted_g - p.delta_g), 0) from restatement_postings p "
            "where p.restatement_id = s.id) "
            "from restatements s order by s.id"
        )
    ):
        yield {
            "id": int(row[0]),
            "methodology": row[1],
            "superseded": [s for s in str(row[2]).split(", ") if s],
            "actor": row[3],
            "started_at": row[4],
            "finished_at": row[5],
            "credits": int(row[6]),
            "recorded": int(row[7]),
            "increased_g": int(row[8]),
            "decreased_g": int(row[9]),
            "posted_g": int(row[10]),
            "shortfall_g": int(row[11]),
        }
