"""The carbon market on SQL: certification, sales, transfers and retirements of units, and
reversals of certified credits, each one transaction under the client's idempotency key.

A rendering of `domain.market`: the rules are the domain's, applied to rows read under lock.
Grams stay on the ledger (`transfers`): a citizen's certified credits move into the pool of
their methodology and region (`certify`), a batch's grams from the pool into its units and
buffer accounts (`issue_units`), a reversed certified credit's grams from the pool or the
buffer back to its issuing account (`certify_reversal`). Units are numbered: `unit_blocks`
says who holds which numbers now and `unit_moves` keeps every move (append-only), so that
`ledger verify` can replay the one against the other.

Locks: certifications one at a time (the certified credits' table, on PostgreSQL), then the
citizens' accounts and the pool's (the ledger's lock order), the serial counter (the batches'
table); a move of units reads the blocks of the holding it takes from `for update`: two moves
out of one holding queue, moves out of different holdings do not wait for each other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, text

from puhui.adapters.sql import accounts, ledger
from puhui.adapters.sql import tables as t
from puhui.domain import market as rules
from puhui.domain.accounts import Outcome, Refusal, points_earned
from puhui.domain.errors import NotFoundError, RefusedError
from puhui.domain.federation import FederationError, Incoming
from puhui.domain.market import Certification

_CLAIM = text(
    "insert into market_operations (party, idempotency_key, kind, request_digest, actor, "
    "result, created_at) values (:p, :k, :kind, :d, :a, '{}', :at) "
    "on conflict (party, idempotency_key) do nothing returning id"
).bindparams(bindparam("at", type_=t.market_operations.c.created_at.type))
_STORED = text(
    "select id, request_digest, kind, result from market_operations "
    "where party = :p and idempotency_key = :k"
)
_RESULT = text("update market_operations set result = :r where id = :o")

# Credited records of a methodology, region and period whose citizen takes part (an active
# grant of the `certify` scope, or, with a programme whose terms say so, points awarded by it
# for the record's platform), not certified yet and not reversed.
_ELIGIBLE = text(
    "select r.seq, r.subject_id, r.reduction_g from records r "
    "where r.status = 'credited' and r.reduction_g > 0 and r.methodology = :m "
    "and r.region like :region and r.start_ms >= :a and r.start_ms < :b "
    "and r.subject_id is not null "
    "and not exists (select 1 from pool_credits p where p.record_seq = r.seq) "
    "and not exists (select 1 from transfers x join transfers y on y.reverses = x.id "
    "where x.record_seq = r.seq and x.kind = 'credit') "
    "and (exists (select 1 from consent_events g where g.subject_id = r.subject_id "
    "and g.kind = 'grant' and (' ' || g.scopes || ' ') like '% certify %' "
    "and g.at <= :at and g.expires_at > :at and not exists (select 1 from consent_events v "
    "where v.grant_id = g.grant_id and v.kind = 'revoke' and v.at <= :at)) "
    "or exists (select 1 from programmes m join accounts a on a.kind = 'points' "
    "and a.code = 'points:' || m.code || ':' || cast(r.subject_id as varchar(20)) "
    "where m.code = :programme and m.certifies "
    "and (m.platform_id is null or m.platform_id = r.platform_id))) "
    "order by r.seq"
).bindparams(bindparam("at", type_=t.consent_events.c.at.type))
# What each credit of a pool has left for the batches to come.
_POOL_LEFT = text(
    "select p.record_seq, p.grams - coalesce((select sum(c.grams) from batch_credits c "
    "where c.record_seq = p.record_seq), 0) - coalesce((select sum(d.grams) from buffer_draws d "
    "where d.record_seq = p.record_seq and d.batch_id is null), 0) as left_g "
    "from pool_credits p where p.pool_account_id = :pool order by p.record_seq"
)
_BLOCKS = text(
    "select id, batch_id, first, last from unit_blocks "
    "where holder = :h and coalesce(company_id, 0) = :c order by first"
)
_LEAVES = text(
    "select c.position, c.grams, r.record_id, p.code from batch_credits c "
    "join records r on r.seq = c.record_seq join platforms p on p.id = r.platform_id "
    "where c.batch_id = :b and c.position between :lo and :hi order by c.position"
)


class SqlMarket:
    """Implements `service.ports.Market`: one transaction a call, or nothing changed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- companies ---------------------------------------------------------------------------

    def add_company(self, uscc: str, name: str, at: datetime) -> int:
        """Register a company (its id); a known code keeps its row and is refused.

        Raises:
            RefusedError: `company_exists`.
        """
        with self.engine.begin() as conn:
            found = conn.execute(
                select(t.companies.c.id).where(t.companies.c.uscc == uscc)
            ).scalar()
            if found is not None:
                raise RefusedError("company_exists", f"a company {uscc} is registered already")
            return int(
                conn.execute(
                    insert(t.companies)
                    .values(uscc=uscc, name=name, created_at=at)
                    .returning(t.companies.c.id)
                ).scalar_one()
            )

    # --- certification -----------------------------------------------------------------------

    def certify(
        self, what: Certification, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Certify the credits of a month into the pool, and issue the pool's whole units as a
        batch (`domain.market`)."""
        with self.engine.begin() as conn:
            if what.programme is not None:
                accounts.programme_row(conn, what.programme)  # NotFoundError: none
            claimed = _claim(conn, "exchange", key, "certify", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            if conn.dialect.name == "postgresql":
                # Certifications queue: each sees what the one before certified.
                conn.execute(text("lock table pool_credits in exclusive mode"))
            pool = accounts.shared(conn, "pool", _pool_code(what), "g")
            start, end = rules.period_ms(what.period)
            rows = conn.execute(
                _ELIGIBLE,
                {
                    "m": what.methodology,
                    "region": what.region + "%",
                    "a": start,
                    "b": end,
                    "at": at,
                    "programme": what.programme,
                },
            ).all()
            candidates = [rules.Credit(int(s), int(c), int(g)) for s, c, g in rows]
            found = _citizen_accounts(conn, sorted({c.citizen for c in candidates}))
            owned = {c: account for c, (account, _) in found.items()}
            balances = {c: held for c, (_, held) in found.items()}
            accounts.lock(conn, pool)  # after the citizens' own: the ledger's lock order
            certified = rules.allocate(candidates, balances)
            result: dict[str, Any] = {
                "period": what.period,
                "methodology": what.methodology,
                "region": what.region,
                "credits": len(certified),
                "citizens": len({c.citizen for c in certified}),
                "certified_g": sum(c.grams for c in certified),
                "points": 0,
                "batch": None,
            }
            if certified:
                _into_pool(conn, certified, owned, pool, claimed, at)
                if what.programme is not None:
                    result["points"] = _points_for(conn, what.programme, certified, at)
            held = accounts.balance(conn, pool)
            units = rules.units_of(held)
            if units:
                result["batch"] = _issue(conn, what, pool, units, claimed, at)
            result["pool_g"] = accounts.balance(conn, pool)
            return _done(conn, claimed, "certify", result)

    # --- units -------------------------------------------------------------------------------

    def sell(
        self,
        uscc: str,
        units: int,
        unit_price_fen: int,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """The exchange sells units to a company: its lowest-numbered sellable units."""
        with self.engine.begin() as conn:
            company = _company(conn, uscc)
            claimed = _claim(conn, "exchange", key, "sell", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            moved = _move(conn, claimed, "sell", units, ("exchange", 0), ("company", company), at)
            conn.execute(
                insert(t.unit_trades).values(
                    operation_id=claimed,
                    company_id=company,
                    units=units,
                    unit_price_fen=unit_price_fen,
                    at=at,
                )
            )
            result = {
                "company": uscc,
                "units": units,
                "unit_price_fen": unit_price_fen,
                "serials": _serials(conn, moved),
            }
            return _done(conn, claimed, "sell", result)

    def transfer(
        self, uscc: str, to: str, units: int, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """A company moves units to another company: its lowest-numbered units."""
        with self.engine.begin() as conn:
            giver = _company(conn, uscc)
            taker = _company(conn, to)
            claimed = _claim(conn, f"company:{giver}", key, "transfer", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            if giver == taker:
                raise RefusedError("same_company", "units are transferred to another company")
            moved = _move(
                conn, claimed, "transfer", units, ("company", giver), ("company", taker), at
            )
            result = {"from": uscc, "to": to, "units": units, "serials": _serials(conn, moved)}
            return _done(conn, claimed, "transfer", result)

    def export(
        self,
        uscc: str,
        to_node: str,
        to_company: str,
        to_name: str,
        units: int,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """A company sends units to a company registered at another node: its lowest-numbered
        units leave this registry (`abroad`, to that node) and wait, as transfers of the
        protocol, to be sent to the registry of the common mechanism, which moves them into
        the other node's registry or refuses (then they come back: `return_units`).

        Raises:
            RefusedError: `not_joined`, `same_node`, `insufficient_units`.
        """
        with self.engine.begin() as conn:
            own = conn.execute(text("select node from federation_link")).scalar()
            if own is None:
                raise RefusedError(
                    "not_joined", "this node has not joined the common mechanism's registry"
                )
            if to_node == own:
                raise RefusedError("same_node", f"{to_node} is this node: transfer the units")
            company = _company(conn, uscc)
            claimed = _claim(conn, f"company:{company}", key, "export", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            moved = _move(
                conn, claimed, "export", units, ("company", company), ("abroad", 0), at,
                node=to_node,
            )  # fmt: skip
            first = int(
                conn.execute(
                    text("select coalesce(max(transfer), 0) + 1 from federation_sends")
                ).scalar_one()
            )
            conn.execute(
                insert(t.federation_sends),
                [
                    {
                        "transfer": first + i, "operation_id": claimed, "batch_id": b.batch,
                        "first": b.first, "last": b.last, "company_id": company,
                        "to_node": to_node, "to_company": to_company, "to_name": to_name,
                    }
                    for i, b in enumerate(moved)
                ],
            )  # fmt: skip
            result = {
                "from": uscc,
                "to_node": to_node,
                "to": to_company,
                "units": units,
                "serials": _serials(conn, moved),
                "transfers": list(range(first, first + len(moved))),
            }
            return _done(conn, claimed, "export", result)

    def retire(
        self,
        uscc: str,
        units: int,
        beneficiary: str,
        purpose: str,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """A company retires units for a beneficiary and a purpose: for good."""
        with self.engine.begin() as conn:
            company = _company(conn, uscc)
            claimed = _claim(conn, f"company:{company}", key, "retire", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            retirement = int(
                conn.execute(
                    insert(t.unit_retirements)
                    .values(
                        operation_id=claimed,
                        company_id=company,
                        units=units,
                        beneficiary=beneficiary,
                        purpose=purpose,
                        at=at,
                    )
                    .returning(t.unit_retirements.c.id)
                ).scalar_one()
            )
            moved = _move(
                conn, claimed, "retire", units, ("company", company), ("retired", company), at,
                retirement=retirement,
            )  # fmt: skip
            result = {
                "company": uscc,
                "retirement": retirement,
                "units": units,
                "beneficiary": beneficiary,
                "purpose": purpose,
                "serials": _serials(conn, moved),
            }
            return _done(conn, claimed, "retire", result)

    # --- reversals ---------------------------------------------------------------------------

    def reverse_credit(
        self, entry: int, reason: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Reverse a certified credit: its grams still in the pool go back from the pool, those
        in batches are drawn from each batch's buffer, and what a buffer cannot cover is
        recorded as its shortfall. Buffer units no longer backed are cancelled."""
        with self.engine.begin() as conn:
            record = conn.execute(
                text(
                    "select coalesce(x.record_seq, h.record_seq) from transfers x "
                    "left join transfers h on h.id = x.reverses "
                    "where x.id = :e and x.kind in ('credit', 'release')"
                ),
                {"e": entry},
            ).scalar()
            if record is None:
                raise NotFoundError(f"no credit entry {entry}")
            claimed = _claim(conn, "exchange", key, "reverse", digest, actor, at)
            if isinstance(claimed, Outcome):
                return claimed
            pooled = conn.execute(
                select(t.pool_credits).where(t.pool_credits.c.record_seq == record)
            ).one_or_none()
            if pooled is None:
                raise RefusedError(
                    "not_certified", f"entry {entry} is not certified: reverse it on the ledger"
                )
            done = conn.execute(
                select(t.buffer_draws.c.id).where(t.buffer_draws.c.record_seq == record)
            ).first()
            if done is not None:
                raise RefusedError("already_reversed", f"entry {entry} is reversed already")
            source = _issuance_of(conn, record)
            pieces = conn.execute(
                select(t.batch_credits.c.batch_id, t.batch_credits.c.grams)
                .where(t.batch_credits.c.record_seq == record)
                .order_by(t.batch_credits.c.batch_id)
            ).all()
            in_pool = int(pooled.grams) - sum(int(g) for _, g in pieces)
            drawn: list[dict[str, Any]] = []
            if in_pool > 0:
                ledger.post(
                    conn, "certify_reversal",
                    [(int(pooled.pool_account_id), -in_pool, True), (source, in_pool, False)], at,
                )  # fmt: skip
                _draw_row(conn, claimed, record, None, in_pool, in_pool, 0, at)
                drawn.append({"batch": None, "grams": in_pool, "drawn_g": in_pool})
            for batch_id, grams in pieces:
                batch = conn.execute(
                    select(t.unit_batches).where(t.unit_batches.c.id == batch_id)
                ).one()
                accounts.lock(conn, int(batch.buffer_account_id))
                buffer_g = accounts.balance(conn, int(batch.buffer_account_id))
                taken, short = rules.draw(buffer_g, int(grams))
                if taken:
                    ledger.post(
                        conn, "certify_reversal",
                        [(int(batch.buffer_account_id), -taken, True), (source, taken, False)], at,
                    )  # fmt: skip
                _draw_row(conn, claimed, record, int(batch_id), int(grams), taken, short, at)
                cancelled = _cancel_buffer(conn, claimed, batch, buffer_g - taken, at)
                drawn.append(
                    {
                        "batch": _batch_serial(batch),
                        "grams": int(grams),
                        "drawn_g": taken,
                        "shortfall_g": short,
                        "units_cancelled": cancelled,
                    }
                )
            result = {"reversed": entry, "record": int(record), "reason": reason, "draws": drawn}
            return _done(conn, claimed, "reverse", result)


# --- helpers ------------------------------------------------------------------------------------


def _claim(
    conn: Connection, party: str, key: str, kind: str, digest: str, actor: str, at: datetime
) -> int | Outcome:
    """Claim an idempotency key of a party (its operation id), or the first answer to it.

    Raises:
        RefusedError: `idempotency_conflict`.
    """
    values = {"p": party, "k": key, "kind": kind, "d": digest, "a": actor, "at": at}
    claimed = conn.execute(_CLAIM, values).scalar()
    if claimed is not None:
        return int(claimed)
    operation, stored_digest, stored_kind, result = conn.execute(
        _STORED, {"p": party, "k": key}
    ).one()
    if stored_digest != digest:
        raise Refusal(
            "idempotency_conflict", "this idempotency key was used for another request"
        ).error()
    return Outcome(int(operation), stored_kind, json.loads(result), replayed=True)


def _done(conn: Connection, operation: int, kind: str, result: dict[str, Any]) -> Outcome:
    conn.execute(_RESULT, {"r": json.dumps(result, sort_keys=True), "o": operation})
    return Outcome(operation, kind, result)


def _pool_code(what: Certification) -> str:
    return f"pool:{what.methodology}:{what.region}"


def _citizen_accounts(conn: Connection, citizens: list[int]) -> dict[int, tuple[int, int]]:
    """The grams accounts of citizens and what each holds (those with a balance), their balance
    rows locked in id order (the ledger's lock order; SQLite has one writer at a time)."""
    found: dict[int, tuple[int, int]] = {}
    locking = " for update of b" if conn.dialect.name == "postgresql" else ""
    for i in range(0, len(citizens), 5_000):
        for subject, account, held in conn.execute(
            text(
                "select a.subject_id, a.id, b.balance_g from accounts a "
                "join balances b on b.account_id = a.id "
                "where a.kind = 'citizen' and a.subject_id in :s order by a.id" + locking
            ).bindparams(bindparam("s", expanding=True)),
            {"s": citizens[i : i + 5_000]},
        ).all():
            found[int(subject)] = (int(account), int(held))
    return found


def _into_pool(
    conn: Connection,
    certified: Sequence[rules.Credit],
    owned: dict[int, int],
    pool: int,
    operation: int,
    at: datetime,
) -> None:
    """Move the certified credits' grams from their citizens' accounts into the pool, and
    record each credit as certified (once: the record is the key)."""
    per_citizen: dict[int, int] = {}
    for c in certified:
        per_citizen[c.citizen] = per_citizen.get(c.citizen, 0) + c.grams
    legs = [(owned[c], -g, True) for c, g in sorted(per_citizen.items())]
    ledger.post(conn, "certify", [*legs, (pool, sum(per_citizen.values()), False)], at)
    conn.execute(
        insert(t.pool_credits),
        [
            {
                "record_seq": c.seq,
                "operation_id": operation,
                "subject_id": c.citizen,
                "pool_account_id": pool,
                "grams": c.grams,
            }
            for c in certified
        ],
    )


def _points_for(
    conn: Connection, programme: str, certified: Sequence[rules.Credit], at: datetime
) -> int:
    """The programme's points for the grams each citizen gave to certification."""
    row = accounts.programme_row(conn, programme)
    per_citizen: dict[int, int] = {}
    for c in certified:
        per_citizen[c.citizen] = per_citizen.get(c.citizen, 0) + c.grams
    earned = {c: points_earned(g, row["points_per_kg"]) for c, g in sorted(per_citizen.items())}
    earned = {c: p for c, p in earned.items() if p > 0}
    if not earned:
        return 0
    owned = accounts.points(conn, programme, sorted(earned))
    source = accounts.shared(conn, "programme", f"programme:{programme}", "pt")
    legs = [(owned[c], p, False) for c, p in earned.items()]
    ledger.post(conn, "certify_points", [(source, -sum(earned.values()), False), *legs], at)
    return sum(earned.values())


def _issue(
    conn: Connection,
    what: Certification,
    pool: int,
    units: int,
    operation: int,
    at: datetime,
) -> dict[str, Any]:
    """Issue a batch of `units` whole units from the pool's oldest grams: its leaves and
    Merkle root, its serial block, its units and buffer accounts and blocks."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("lock table unit_batches in exclusive mode"))
    first = int(
        conn.execute(
            text("select coalesce(max(last_serial), 0) + 1 from unit_batches")
        ).scalar_one()
    )
    last = first + units - 1
    buffer = rules.buffer_units(units, what.buffer_bp)
    left = [(int(s), int(g)) for s, g in conn.execute(_POOL_LEFT, {"pool": pool}).all()]
    pieces = rules.fill([(s, g) for s, g in left if g > 0], units * rules.UNIT_G)
    units_account = accounts.shared(conn, "units", f"units:{first}", "g")
    buffer_account = accounts.shared(conn, "buffer", f"buffer:{first}", "g")
    legs = [(pool, -units * rules.UNIT_G, True)]
    if units > buffer:
        legs.append((units_account, (units - buffer) * rules.UNIT_G, False))
    if buffer:
        legs.append((buffer_account, buffer * rules.UNIT_G, False))
    ledger.post(conn, "issue_units", legs, at)
    batch = int(
        conn.execute(
            insert(t.unit_batches)
            .values(
                operation_id=operation,
                exchange=what.exchange,
                methodology=what.methodology,
                region=what.region,
                vintage=what.period,
                units=units,
                buffer_units=buffer,
                buffer_bp=what.buffer_bp,
                first_serial=first,
                last_serial=last,
                leaves=len(pieces),
                root="",
                units_account_id=units_account,
                buffer_account_id=buffer_account,
                certified_at=at,
            )
            .returning(t.unit_batches.c.id)
        ).scalar_one()
    )
    conn.execute(
        insert(t.batch_credits),
        [
            {"batch_id": batch, "position": i, "record_seq": seq, "grams": grams}
            for i, (seq, grams) in enumerate(pieces)
        ],
    )
    hashes = leaf_hashes(conn, batch)
    roots = rules.chunk_roots(hashes)
    root = rules.merkle_root(roots).hex()
    conn.execute(
        insert(t.batch_nodes),
        [{"batch_id": batch, "chunk": i, "hash": h.hex()} for i, h in enumerate(roots)],
    )
    conn.execute(t.unit_batches.update().where(t.unit_batches.c.id == batch).values(root=root))
    blocks = []
    if units > buffer:
        blocks.append(("exchange", first, last - buffer))
    if buffer:
        blocks.append(("buffer", last - buffer + 1, last))
    for holder, a, b in blocks:
        conn.execute(insert(t.unit_blocks).values(batch_id=batch, first=a, last=b, holder=holder))
        conn.execute(
            insert(t.unit_moves).values(
                operation_id=operation, kind="issue", batch_id=batch, first=a, last=b,
                from_holder=None, from_company=None, to_holder=holder, to_company=None, at=at,
            )
        )  # fmt: skip
    serial = rules.serial(what.exchange, what.methodology, what.period, first, last)
    return {"serial": serial, "units": units, "buffer_units": buffer, "root": root,
            "leaves": len(pieces)}  # fmt: skip


def leaf_hashes(
    conn: Connection, batch: int, first: int = 0, last: int | None = None
) -> list[bytes]:
    """The leaf hashes of a batch's credits, in its order (those at positions `first` to
    `last` when given)."""
    rows = conn.execute(
        _LEAVES, {"b": batch, "lo": first, "hi": (2**31 - 1) if last is None else last}
    ).all()
    return [
        rules.leaf_hash(rules.leaf(str(code), str(record_id), int(grams)))
        for _, grams, record_id, code in rows
    ]


def _company(conn: Connection, uscc: str) -> int:
    found = conn.execute(select(t.companies.c.id).where(t.companies.c.uscc == uscc)).scalar()
    if found is None:
        raise NotFoundError(f"no company {uscc}")
    return int(found)


def _move(
    conn: Connection,
    operation: int,
    kind: str,
    units: int,
    source: tuple[str, int],
    to: tuple[str, int],
    at: datetime,
    retirement: int | None = None,
    node: str | None = None,
) -> list[rules.Block]:
    """Move `units` of a holding, lowest numbers first, splitting a block where the count ends;
    every part moved is a row of `unit_moves`. Units moved `abroad` name the node (`node`).

    Raises:
        RefusedError: `insufficient_units`, `units_not_positive`.
    """
    if units <= 0:
        raise RefusedError("units_not_positive", "move a positive number of units")
    holder, owner = source
    locking = " for update" if conn.dialect.name == "postgresql" else ""
    rows = conn.execute(text(_BLOCKS.text + locking), {"h": holder, "c": owner}).all()
    blocks = [rules.Block(int(r.batch_id), int(r.first), int(r.last)) for r in rows]
    held = sum(b.units for b in blocks)
    if held < units:
        raise RefusedError(
            "insufficient_units", f"{units} units are needed; the holding has {held}"
        )
    taken, _ = rules.take(blocks, units)
    _place(conn, rows, taken, source, to, retirement, node)
    _moved(conn, operation, kind, taken, source, to, at, node)
    return taken


def _place(
    conn: Connection,
    rows: Sequence[Any],
    taken: Sequence[rules.Block],
    source: tuple[str, int],
    to: tuple[str, int],
    retirement: int | None,
    node: str | None,
) -> None:
    """Give the units `taken` out of the stored blocks `rows` (id, batch_id, first, last, and
    `node` when abroad) to their new holder: each block they are in is cut where they start
    and end, and the parts that stay keep their holder."""
    to_holder, to_owner = to
    holder, owner = source
    for r in rows:
        inside = [
            b for b in taken if b.batch == int(r.batch_id) and b.first <= int(r.last)
            and b.last >= int(r.first)
        ]  # fmt: skip
        if not inside:
            continue
        conn.execute(t.unit_blocks.delete().where(t.unit_blocks.c.id == int(r.id)))
        at = int(r.first)
        parts: list[tuple[int, int, bool]] = []
        for b in sorted(inside, key=lambda b: b.first):
            if at < b.first:
                parts.append((at, b.first - 1, False))
            parts.append((b.first, b.last, True))
            at = b.last + 1
        if at <= int(r.last):
            parts.append((at, int(r.last), False))
        for first, last, moved in parts:
            conn.execute(
                insert(t.unit_blocks).values(
                    batch_id=int(r.batch_id), first=first, last=last,
                    holder=to_holder if moved else holder,
                    company_id=(to_owner if moved else owner) or None,
                    retirement_id=retirement if moved else None,
                    node=node if moved else getattr(r, "node", None),
                )
            )  # fmt: skip


def _moved(
    conn: Connection,
    operation: int,
    kind: str,
    taken: Sequence[rules.Block],
    source: tuple[str, int],
    to: tuple[str, int],
    at: datetime,
    node: str | None,
) -> None:
    conn.execute(
        insert(t.unit_moves),
        [
            {
                "operation_id": operation, "kind": kind, "batch_id": b.batch, "first": b.first,
                "last": b.last, "from_holder": source[0], "from_company": source[1] or None,
                "to_holder": to[0], "to_company": to[1] or None, "at": at, "node": node,
            }
            for b in taken
        ],
    )  # fmt: skip


_ABROAD = text(
    "select id, batch_id, first, last, node from unit_blocks "
    "where batch_id = :b and holder = 'abroad' and first <= :hi and last >= :lo order by first"
)


def import_units(conn: Connection, own: str, incoming: Sequence[Incoming], at: datetime) -> int:
    """Bring units other nodes sent into this registry, as the registry of the common mechanism
    moved them (`Incoming`, oldest first): each to its company (registered here if it was not),
    from the batch's row (recognised on its first units: its serials are its origin's); units
    this node issued come back from `abroad`. Returns the units received.

    Raises:
        FederationError: the registry moves units this registry does not have abroad (nothing
            is applied).
    """
    total = 0
    for i in incoming:
        operation = conn.execute(
            _CLAIM,
            {"p": "federation", "k": f"inbox:{i.number}", "kind": "import",
             "d": _digest_of(i), "a": f"node {i.sender}", "at": at},
        ).scalar()  # fmt: skip
        if operation is None:
            continue  # received before
        company = conn.execute(
            select(t.companies.c.id).where(t.companies.c.uscc == i.company)
        ).scalar()
        if company is None:
            company = conn.execute(
                insert(t.companies)
                .values(uscc=i.company, name=i.name, created_at=at)
                .returning(t.companies.c.id)
            ).scalar_one()
        b = i.batch
        batch = conn.execute(
            text("select id, imported from unit_batches where exchange = :e and first_serial = :f"),
            {"e": b.origin, "f": b.first},
        ).first()
        if batch is None:
            if b.origin == own:
                raise FederationError(f"transfer {i.number}: a batch of this node it does not have")
            batch_id = int(
                conn.execute(
                    insert(t.unit_batches)
                    .values(
                        operation_id=operation, exchange=b.origin, methodology=b.methodology,
                        region=b.region, vintage=b.vintage, units=b.last - b.first + 1,
                        buffer_units=0, buffer_bp=0, first_serial=b.first, last_serial=b.last,
                        leaves=0, root=b.root, units_account_id=None, buffer_account_id=None,
                        certified_at=at, imported=True,
                    )
                    .returning(t.unit_batches.c.id)
                ).scalar_one()
            )  # fmt: skip
            conn.execute(
                insert(t.unit_blocks).values(
                    batch_id=batch_id, first=b.first, last=b.last, holder="abroad", node=b.origin
                )
            )
            _moved(
                conn, operation, "recognise", [rules.Block(batch_id, b.first, b.last)],
                (None, 0), ("abroad", 0), at, b.origin,  # type: ignore[arg-type]
            )  # fmt: skip
        else:
            batch_id = int(batch.id)
        rows = conn.execute(_ABROAD, {"b": batch_id, "lo": i.first, "hi": i.last}).all()
        held = [rules.Block(batch_id, int(r.first), int(r.last)) for r in rows]
        try:
            taken, _ = rules.take_range(held, batch_id, i.first, i.last)
        except ValueError:
            raise FederationError(
                f"transfer {i.number}: units {i.first} to {i.last} of {b.origin}'s batch are "
                "not abroad in this registry"
            ) from None
        _place(conn, rows, taken, ("abroad", 0), ("company", int(company)), None, None)
        _moved(conn, operation, "import", taken, ("abroad", 0), ("company", int(company)), at,
               i.sender)  # fmt: skip
        units = i.last - i.first + 1
        total += units
        _done(conn, operation, "import", {"from": i.sender, "to": i.company, "units": units,
                                          "serials": _serials(conn, taken)})  # fmt: skip
    return total


def return_units(conn: Connection, transfer: int, reason: str, at: datetime) -> int:
    """Give back to its company the units of a transfer the registry refused (they never left
    for the other node). Returns the units returned."""
    sent = conn.execute(
        select(t.federation_sends).where(t.federation_sends.c.transfer == transfer)
    ).first()
    if sent is None or sent.refused is not None:
        return 0
    operation = conn.execute(
        _CLAIM,
        {"p": "federation", "k": f"return:{transfer}", "kind": "return", "d": reason,
         "a": "registry", "at": at},
    ).scalar_one()  # fmt: skip
    rows = conn.execute(_ABROAD, {"b": sent.batch_id, "lo": sent.first, "hi": sent.last}).all()
    held = [rules.Block(int(r.batch_id), int(r.first), int(r.last)) for r in rows]
    taken, _ = rules.take_range(held, int(sent.batch_id), int(sent.first), int(sent.last))
    to = ("company", int(sent.company_id))
    _place(conn, rows, taken, ("abroad", 0), to, None, None)
    _moved(conn, operation, "return", taken, ("abroad", 0), to, at, str(sent.to_node))
    conn.execute(
        t.federation_sends.update()
        .where(t.federation_sends.c.transfer == transfer)
        .values(refused=reason)
    )
    units = int(sent.last) - int(sent.first) + 1
    _done(conn, operation, "return", {"transfer": transfer, "reason": reason, "units": units})
    return units


def _digest_of(i: Incoming) -> str:
    return hashlib.sha256(json.dumps(i, sort_keys=True).encode()).hexdigest()


def _serials(conn: Connection, blocks: Sequence[rules.Block]) -> list[str]:
    """The serial numbers of blocks, adjacent ones joined."""
    out = []
    for block in rules.merged(blocks):
        batch = conn.execute(select(t.unit_batches).where(t.unit_batches.c.id == block.batch)).one()
        out.append(rules.serial(batch.exchange, batch.methodology, batch.vintage, block.first,
                                block.last))  # fmt: skip
    return out


def _batch_serial(batch: Any) -> str:
    return rules.serial(
        batch.exchange, batch.methodology, batch.vintage, batch.first_serial, batch.last_serial
    )


def _issuance_of(conn: Connection, record: int) -> int:
    """The issuance account that credited a record (its platform's, for its methodology)."""
    return int(
        conn.execute(
            text(
                "select a.id from records r join accounts a on a.kind = 'issuance' "
                "and a.platform_id = r.platform_id and a.methodology = r.methodology "
                "where r.seq = :r"
            ),
            {"r": record},
        ).scalar_one()
    )


def _draw_row(
    conn: Connection,
    operation: int,
    record: int,
    batch: int | None,
    grams: int,
    drawn: int,
    short: int,
    at: datetime,
) -> None:
    conn.execute(
        insert(t.buffer_draws).values(
            operation_id=operation, record_seq=record, batch_id=batch, grams=grams,
            drawn_g=drawn, shortfall_g=short, at=at,
        )
    )  # fmt: skip


def _cancel_buffer(
    conn: Connection, operation: int, batch: Any, buffer_g: int, at: datetime
) -> int:
    """Cancel the buffer units no longer backed by a whole unit's grams: its highest numbers."""
    rows = conn.execute(
        text(
            "select id, batch_id, first, last from unit_blocks "
            "where batch_id = :b and holder = 'buffer' order by first"
        ),
        {"b": batch.id},
    ).all()
    blocks = [rules.Block(int(r.batch_id), int(r.first), int(r.last)) for r in rows]
    cancel = rules.buffer_cancelled(sum(b.units for b in blocks), buffer_g)
    if not cancel:
        return 0
    taken, left = rules.take_highest(blocks, cancel)
    conn.execute(t.unit_blocks.delete().where(t.unit_blocks.c.id.in_([int(r.id) for r in rows])))
    for block in left:
        conn.execute(
            insert(t.unit_blocks).values(
                batch_id=block.batch, first=block.first, last=block.last, holder="buffer"
            )
        )
    for block in taken:
        conn.execute(
            insert(t.unit_blocks).values(
                batch_id=block.batch, first=block.first, last=block.last, holder="cancelled"
            )
        )
        conn.execute(
            insert(t.unit_moves).values(
                operation_id=operation, kind="cancel", batch_id=block.batch, first=block.first,
                last=block.last, from_holder="buffer", from_company=None, to_holder="cancelled",
                to_company=None, at=at,
            )
        )  # fmt: skip
    return cancel
