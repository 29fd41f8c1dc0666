"""Ledger verification: every invariant re-checked from the stored rows.

`verify` returns a list of violations (empty when the ledger is sound) and never stops at the
first, like a batch's checks. Each check is one set-based query, so it scales with the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from puhui.adapters.sql import tallies
from puhui.bootstrap import App


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, with up to ten examples."""

    check: str
    count: int
    examples: tuple[str, ...]


CHECKS: dict[str, tuple[str, str | Callable[[str], str]]] = {
    "entry_unbalanced": (
        "every entry's postings sum to zero and it has at least two",
        "select cast(entry_id as varchar(20)) from postings group by entry_id "
        "having sum(amount_g) <> 0 or count(*) < 2",
    ),
    "entry_without_postings": (
        "every entry has postings",
        "select cast(e.id as varchar(20)) from entries e "
        "where not exists (select 1 from postings p where p.entry_id = e.id)",
    ),
    "posting_zero": (
        "no posting is zero grams",
        "select cast(entry_id as varchar(20)) from postings where amount_g = 0",
    ),
    "balance_mismatch": (
        "every account's balance equals the sum of its postings",
        "select cast(a.id as varchar(20)) from accounts a "
        "left join balances b on b.account_id = a.id "
        "left join (select account_id, sum(amount_g) as s from postings group by account_id) p "
        "on p.account_id = a.id where coalesce(b.balance_g, 0) <> coalesce(p.s, 0)",
    ),
    "ledger_total": (
        "all postings together sum to zero",
        "select cast(sum(amount_g) as varchar(30)) from postings having sum(amount_g) <> 0",
    ),
    "credit_missing": (
        "every credited record with grams has its credit entry",
        "select cast(r.seq as varchar(20)) from records r where r.status = 'credited' "
        "and r.reduction_g > 0 and not exists (select 1 from entries e where e.record_seq = r.seq)",
    ),
    "credit_without_credited_record": (
        "every credit entry belongs to a credited record",
        "select cast(e.id as varchar(20)) from entries e join records r on r.seq = e.record_seq "
        "where e.kind = 'credit' and (r.status <> 'credited' or r.reduction_g = 0)",
    ),
    "credit_amount_mismatch": (
        "a credit entry moves exactly the record's grams to the record's citizen",
        "select cast(e.id as varchar(20)) from entries e join records r on r.seq = e.record_seq "
        "join postings p on p.entry_id = e.id join accounts a on a.id = p.account_id "
        "where e.kind = 'credit' and p.amount_g > 0 "
        "and (p.amount_g <> r.reduction_g or a.subject_id is null or a.subject_id <> r.subject_id)",
    ),
    "balance_orphaned": (
        "every balance belongs to an account",
        "select cast(b.account_id as varchar(20)) from balances b "
        "left join accounts a on a.id = b.account_id where a.id is null",
    ),
    "account_orphaned": (
        "every account names an existing citizen or platform",
        "select cast(a.id as varchar(20)) from accounts a "
        "left join subjects s on s.id = a.subject_id left join platforms p on p.id = a.platform_id "
        "left join subjects o on o.id = a.owner_id "
        "where (a.kind = 'citizen' and s.id is null) or (a.kind = 'issuance' and p.id is null) "
        "or (a.kind in ('points', 'retired') and o.id is null)",
    ),
    "posting_orphaned": (
        "every posting belongs to an existing entry and account",
        "select cast(p.entry_id as varchar(20)) from postings p "
        "left join entries e on e.id = p.entry_id left join accounts a on a.id = p.account_id "
        "where e.id is null or a.id is null",
    ),
    "entry_orphaned": (
        "every credit entry belongs to a stored record",
        "select cast(e.id as varchar(20)) from entries e "
        "left join records r on r.seq = e.record_seq "
        "where e.record_seq is not null and r.seq is null",
    ),
    "record_orphaned": (
        "every record names an existing platform, batch, citizen and calculation",
        "select cast(r.seq as varchar(20)) from records r "
        "left join platforms p on p.id = r.platform_id left join batches b on b.id = r.batch_id "
        "left join subjects s on s.id = r.subject_id "
        "left join quantifications q on q.id = r.quantification_id "
        "where p.id is null or b.id is null or (r.subject_id is not null and s.id is null) "
        "or (r.quantification_id is not null and q.id is null)",
    ),
    "entry_mixed_units": (
        "no entry moves grams and points together",
        "select cast(p.entry_id as varchar(20)) from postings p "
        "join accounts a on a.id = p.account_id group by p.entry_id "
        "having count(distinct a.unit) > 1",
    ),
    "balance_negative": (
        "no citizen, points, retired, reward or expired account is below zero",
        "select cast(a.id as varchar(20)) from accounts a join balances b on b.account_id = a.id "
        "where a.kind not in ('issuance', 'programme') and b.balance_g < 0",
    ),
    "retired_taken_out": (
        "nothing is ever taken out of retired grams",
        "select cast(p.entry_id as varchar(20)) from postings p "
        "join accounts a on a.id = p.account_id where a.kind = 'retired' and p.amount_g < 0",
    ),
    "reversal_mismatch": (
        "a reversal mirrors the entry it reverses, leg for leg",
        "select cast(e.id as varchar(20)) from entries e "
        "join entries r on r.id = e.reverses "
        "join postings p on p.entry_id = e.id "
        "left join postings q on q.entry_id = r.id and q.account_id = p.account_id "
        "where q.amount_g is null or q.amount_g <> -p.amount_g "
        "or (select count(*) from postings x where x.entry_id = e.id) "
        "<> (select count(*) from postings y where y.entry_id = r.id)",
    ),
    "stock_mismatch": (
        "a reward's stock is what was redeemed plus what remains, and each redemption is one",
        "select w.code from rewards w where (w.stock is not null "
        "and w.issued + w.remaining <> w.stock) or w.issued <> (select count(*) "
        "from operations o where o.reward_id = w.id and o.kind = 'redeem')",
    ),
    "ref_credited_twice": (
        "no (scene, ref) is credited twice",
        "select scene || ':' || ref from records where status = 'credited' and ref is not null "
        "group by scene, ref having count(*) > 1",
    ),
    "trip_credited_twice": (
        "no two credited trips of a citizen overlap by more than half of the shorter",
        "select cast(a.seq as varchar(20)) || '~' || cast(b.seq as varchar(20)) "
        "from records a join records b on b.subject_id = a.subject_id and b.seq > a.seq "
        "and b.start_ms < a.end_ms and a.start_ms < b.end_ms "
        "where a.status = 'credited' and b.status = 'credited' "
        "and a.end_ms is not null and b.end_ms is not null "
        "and 2 * (case when a.end_ms < b.end_ms then a.end_ms else b.end_ms end "
        "- case when a.start_ms > b.start_ms then a.start_ms else b.start_ms end) > "
        "case when a.end_ms - a.start_ms < b.end_ms - b.start_ms "
        "then a.end_ms - a.start_ms else b.end_ms - b.start_ms end",
    ),
    "tally_mismatch": (
        "the statistics' tallies (dimension:key:status:reason) recount exactly from records",
        tallies.mismatches,
    ),
}


def verify(app: App) -> list[Violation]:
    """Re-check every ledger invariant; an empty list means the ledger is sound."""
    violations = []
    dialect = app.engine.dialect.name
    with app.engine.connect() as conn:
        for name, (_doc, query) in CHECKS.items():
            sql = query if isinstance(query, str) else query(dialect)
            rows = conn.execute(text(sql)).scalars().all()
            if rows:
                violations.append(Violation(name, len(rows), tuple(str(r) for r in rows[:10])))
    return violations


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Size of the ledger."""

    accounts: int
    entries: int
    postings: int
    issued_g: int


def totals(app: App) -> LedgerTotals:
    """Counts and grams issued (credited to citizens), for the verify summary."""
    with app.engine.connect() as conn:
        accounts, entries, postings, issued = conn.execute(
            text(
                "select (select count(*) from accounts), (select count(*) from entries), "
                "(select count(*) from postings), "
                "(select coalesce(sum(p.amount_g), 0) from postings p "
                "join entries e on e.id = p.entry_id where e.kind = 'credit' and p.amount_g > 0)"
            )
        ).one()
    return LedgerTotals(int(accounts), int(entries), int(postings), int(issued))
