"""Ledger audit on SQL: each invariant of `service.ledger.CHECKS` as one set-based query over
the stored rows, naming what breaks it, so a check scales with the ledger."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

from puhui.adapters.sql import chain, market_audit, tallies
from puhui.adapters.sql.recompute import (
    Recomputed,
    altered_calculations,
    misrestated_credits,
    unrecomputable_credits,
)
from puhui.domain.methodology import Catalogue

# The rows breaking each invariant, by check: one text each (an id, or a key) naming them.
QUERIES: dict[str, str | Callable[[str], str] | Recomputed | chain.Rehashed] = {
    "transfer_not_positive": (
        "select cast(id as varchar(20)) from transfers "
        "where amount <= 0 or debit_account_id = credit_account_id"
    ),
    "balance_mismatch": (
        "select cast(a.id as varchar(20)) from accounts a "
        "left join balances b on b.account_id = a.id "
        "left join (select x.account_id, sum(x.amount) as s from ("
        "select credit_account_id as account_id, amount from transfers union all "
        "select debit_account_id, -amount from transfers) x group by x.account_id) p "
        "on p.account_id = a.id where coalesce(b.balance_g, 0) <> coalesce(p.s, 0)"
    ),
    "ledger_total": (
        "select a.unit || ':' || cast(sum(b.balance_g) as varchar(30)) from balances b "
        "join accounts a on a.id = b.account_id group by a.unit having sum(b.balance_g) <> 0"
    ),
    "credit_missing": (
        # A credit, or a hold its release posted.
        "select cast(r.seq as varchar(20)) from records r where r.status = 'credited' "
        "and r.reduction_g > 0 "
        "and not exists (select 1 from transfers x where x.record_seq = r.seq "
        "and (x.kind = 'credit' or (x.kind = 'hold' and exists (select 1 from transfers p "
        "where p.reverses = x.id and p.kind = 'release'))))"
    ),
    "credit_without_credited_record": (
        "select cast(x.id as varchar(20)) from transfers x "
        "left join records r on r.seq = x.record_seq "
        "where (x.kind = 'credit' or x.kind = 'hold') <> (x.record_seq is not null) "
        "or (x.kind = 'credit' and (r.status <> 'credited' or r.reduction_g = 0))"
    ),
    "hold_missing": (
        "select cast(r.seq as varchar(20)) from records r left join holds h "
        "on h.record_seq = r.seq where r.status = 'held' and (h.record_seq is null "
        "or h.decided_at is not null or (r.reduction_g > 0 and not exists (select 1 "
        "from transfers x where x.record_seq = r.seq and x.kind = 'hold' and not exists "
        "(select 1 from transfers p where p.reverses = x.id))))"
    ),
    "hold_mismatch": (
        "select cast(x.id as varchar(20)) from transfers x "
        "join records r on r.seq = x.record_seq "
        "left join holds h on h.record_seq = r.seq "
        "left join accounts a on a.id = x.credit_account_id "
        "left join accounts i on i.id = x.debit_account_id "
        "left join transfers p on p.reverses = x.id "
        "where x.kind = 'hold' and (h.record_seq is null or x.amount <> h.grams "
        "or a.kind is null or a.kind <> 'held' or a.owner_id <> r.subject_id "
        "or i.kind is null or i.kind <> 'issuance' or i.platform_id <> r.platform_id "
        "or i.methodology <> r.methodology "
        "or (r.status = 'held' and (p.id is not null or x.amount <> r.reduction_g)) "
        "or (r.status = 'credited' and (p.id is null or p.kind <> 'release' "
        "or x.amount <> r.reduction_g)) "
        # Rejected, or a duplicate of another node's record (`domain.federation`): voided.
        "or ((r.status = 'rejected' or r.status = 'duplicate') "
        "and (p.id is null or p.kind <> 'void')))"
    ),
    "hold_decision_mismatch": (
        "select cast(h.record_seq as varchar(20)) from holds h "
        "left join records r on r.seq = h.record_seq "
        "where r.seq is null or (h.decided_at is null and r.status <> 'held') "
        "or (h.decided_at is not null and (h.outcome <> r.status "
        "or h.decided_seq is null or h.decided_seq <= h.record_seq))"
    ),
    "pending_settled_wrongly": (
        "select cast(s.id as varchar(20)) from transfers s "
        "left join transfers x on x.id = s.reverses "
        "left join accounts c on c.id = s.credit_account_id "
        "left join accounts hd on hd.id = x.credit_account_id "
        "where (s.kind = 'release' or s.kind = 'void') and (x.id is null or x.kind <> 'hold' "
        "or s.amount <> x.amount or s.debit_account_id <> x.credit_account_id "
        "or (s.kind = 'void' and s.credit_account_id <> x.debit_account_id) "
        "or (s.kind = 'release' and (c.kind is null or c.kind <> 'citizen' "
        "or c.subject_id <> hd.owner_id)))"
    ),
    "credit_amount_mismatch": (
        "select cast(x.id as varchar(20)) from transfers x "
        "join records r on r.seq = x.record_seq "
        "left join accounts a on a.id = x.credit_account_id "
        "left join accounts i on i.id = x.debit_account_id "
        "where x.kind = 'credit' and (x.amount <> r.reduction_g "
        "or a.subject_id is null or a.subject_id <> r.subject_id "
        "or i.kind is null or i.kind <> 'issuance' or i.platform_id <> r.platform_id "
        "or i.methodology <> r.methodology)"
    ),
    "balance_orphaned": (
        "select cast(b.account_id as varchar(20)) from balances b "
        "left join accounts a on a.id = b.account_id where a.id is null"
    ),
    "account_orphaned": (
        "select cast(a.id as varchar(20)) from accounts a "
        "left join subjects s on s.id = a.subject_id left join platforms p on p.id = a.platform_id "
        "left join subjects o on o.id = a.owner_id "
        "where (a.kind = 'citizen' and s.id is null) or (a.kind = 'issuance' and p.id is null) "
        "or (a.kind in ('points', 'retired', 'held') and o.id is null)"
    ),
    "transfer_orphaned": (
        "select cast(x.id as varchar(20)) from transfers x "
        "left join accounts d on d.id = x.debit_account_id "
        "left join accounts c on c.id = x.credit_account_id "
        "left join records r on r.seq = x.record_seq "
        "left join transfers f on f.id = x.linked_to "
        "where d.id is null or c.id is null or (x.record_seq is not null and r.seq is null) "
        "or (x.linked_to is not null and (f.id is null or f.linked_to is not null "
        "or f.kind <> x.kind or f.id > x.id))"
    ),
    "record_orphaned": (
        "select cast(r.seq as varchar(20)) from records r "
        "left join platforms p on p.id = r.platform_id left join batches b on b.id = r.batch_id "
        "left join subjects s on s.id = r.subject_id "
        "left join quantifications q on q.id = r.quantification_id "
        "where p.id is null or b.id is null or (r.subject_id is not null and s.id is null) "
        "or (r.quantification_id is not null and q.id is null)"
    ),
    "transfer_mixed_units": (
        "select cast(x.id as varchar(20)) from transfers x "
        "join accounts d on d.id = x.debit_account_id "
        "join accounts c on c.id = x.credit_account_id where d.unit <> c.unit"
    ),
    "balance_negative": (
        "select cast(a.id as varchar(20)) from accounts a join balances b on b.account_id = a.id "
        "where a.kind not in ('issuance', 'programme') and b.balance_g < 0"
    ),
    "retired_taken_out": (
        "select cast(x.id as varchar(20)) from transfers x "
        "join accounts a on a.id = x.debit_account_id where a.kind = 'retired'"
    ),
    "reversal_mismatch": (
        "select cast(x.id as varchar(20)) from transfers x "
        "left join transfers r on r.id = x.reverses "
        # A release settles a hold into the citizen's account (`pending_settled_wrongly`).
        "where x.reverses is not null and x.kind <> 'release' "
        "and (r.id is null or r.amount <> x.amount "
        "or r.debit_account_id <> x.credit_account_id "
        "or r.credit_account_id <> x.debit_account_id)"
    ),
    "stock_mismatch": (
        "select w.code from rewards w "
        "left join (select reward_id, sum(taken) as taken, sum(allotted) as allotted, "
        "count(allotted) as limited, count(*) as parts from reward_stock group by reward_id) s "
        "on s.reward_id = w.id "
        "left join (select reward_id, count(*) as codes, count(operation_id) as claimed "
        "from reward_codes group by reward_id) c on c.reward_id = w.id "
        "left join (select reward_id, count(*) as redeemed from operations "
        "where kind = 'redeem' group by reward_id) o on o.reward_id = w.id "
        "where case when w.kind = 'coupon' then coalesce(c.claimed, 0) "
        "else coalesce(s.taken, 0) end <> coalesce(o.redeemed, 0) "
        "or case when w.kind = 'coupon' then coalesce(c.claimed, 0) "
        "else coalesce(s.taken, 0) end "
        "<> (select count(*) from transfers x join reward_stock p "
        "on p.account_id = x.credit_account_id where p.reward_id = w.id and x.kind = 'redeem') "
        "or (w.kind = 'coupon' and w.stock <> coalesce(c.codes, 0)) "
        "or (w.kind <> 'coupon' and w.stock is not null and (s.limited <> s.parts "
        "or s.allotted <> w.stock)) "
        "or (w.kind <> 'coupon' and w.stock is null and s.limited <> 0) "
        "or s.parts is null"
    ),
    "ref_credited_twice": (
        "select scene || ':' || ref from records where status = 'credited' and ref is not null "
        "group by scene, ref having count(*) > 1"
    ),
    "trip_credited_twice": (
        "select cast(a.seq as varchar(20)) || '~' || cast(b.seq as varchar(20)) "
        "from records a join records b on b.subject_id = a.subject_id and b.seq > a.seq "
        "and b.start_ms < a.end_ms and a.start_ms < b.end_ms "
        "where a.status = 'credited' and b.status = 'credited' "
        "and a.end_ms is not null and b.end_ms is not null "
        "and 2 * (case when a.end_ms < b.end_ms then a.end_ms else b.end_ms end "
        "- case when a.start_ms > b.start_ms then a.start_ms else b.start_ms end) > "
        "case when a.end_ms - a.start_ms < b.end_ms - b.start_ms "
        "then a.end_ms - a.start_ms else b.end_ms - b.start_ms end"
    ),
    "tally_mismatch": tallies.mismatches,
    "transfer_uncommitted": chain.UNCOMMITTED,
    "commit_altered": chain.Rehashed(chain.altered_commits),
    "chain_broken": chain.Rehashed(chain.broken_chain),
    "checkpoint_invalid": chain.Rehashed(chain.invalid_checkpoints),
    "calculation_altered": Recomputed(altered_calculations),
    "credit_not_recomputable": Recomputed(unrecomputable_credits),
    "credit_misrestated": Recomputed(misrestated_credits),
    **market_audit.QUERIES,
    "batch_root_mismatch": Recomputed(market_audit.altered_roots),
}


class SqlAudit:
    """Implements `service.ports.Audit` on a database engine, one read transaction a call."""

    def __init__(
        self, engine: Engine, catalogue: Catalogue, signer: chain.Signer | None = None
    ) -> None:
        self.engine = engine
        self.catalogue = catalogue
        # Verifies the checkpoints' signatures; without one, every checkpoint is reported.
        self.signer = signer

    def breaking(self, checks: list[str]) -> dict[str, list[str]]:
        """For each check, what breaks its invariant (empty when it holds)."""
        dialect = self.engine.dialect.name
        found: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for name in checks:
                query = QUERIES[name]
                if isinstance(query, Recomputed):
                    found[name] = list(query.judge(conn, self.catalogue))
                    continue
                if isinstance(query, chain.Rehashed):
                    found[name] = list(query.judge(conn, self.signer))
                    continue
                sql = query if isinstance(query, str) else query(dialect)
                found[name] = [str(r) for r in conn.execute(text(sql)).scalars().all()]
        return found

    def size(self) -> tuple[int, int, int]:
        """Accounts, transfers and the grams credited to citizens."""
        with self.engine.connect() as conn:
            accounts, transfers, issued = conn.execute(
                text(
                    "select (select count(*) from accounts), (select count(*) from transfers), "
                    "(select coalesce(sum(amount), 0) from transfers "
                    "where kind = 'credit' or kind = 'release')"
                )
            ).one()
        return int(accounts), int(transfers), int(issued)
