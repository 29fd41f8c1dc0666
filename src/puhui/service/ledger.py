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
    "transfer_not_positive": (
        "every transfer moves a positive amount between two accounts",
        "select cast(id as varchar(20)) from transfers "
        "where amount <= 0 or debit_account_id = credit_account_id",
    ),
    "balance_mismatch": (
        "every account's balance is what its transfers brought in less what they took out",
        "select cast(a.id as varchar(20)) from accounts a "
        "left join balances b on b.account_id = a.id "
        "left join (select x.account_id, sum(x.amount) as s from ("
        "select credit_account_id as account_id, amount from transfers union all "
        "select debit_account_id, -amount from transfers) x group by x.account_id) p "
        "on p.account_id = a.id where coalesce(b.balance_g, 0) <> coalesce(p.s, 0)",
    ),
    "ledger_total": (
        "all balances of a unit together sum to zero: every gram and point is in one place",
        "select a.unit || ':' || cast(sum(b.balance_g) as varchar(30)) from balances b "
        "join accounts a on a.id = b.account_id group by a.unit having sum(b.balance_g) <> 0",
    ),
    "credit_missing": (
        "every credited record with grams has its credit transfer",
        "select cast(r.seq as varchar(20)) from records r where r.status = 'credited' "
        "and r.reduction_g > 0 "
        "and not exists (select 1 from transfers x where x.record_seq = r.seq)",
    ),
    "credit_without_credited_record": (
        "every credit transfer belongs to a credited record, and only credits to records",
        "select cast(x.id as varchar(20)) from transfers x "
        "left join records r on r.seq = x.record_seq "
        "where (x.kind = 'credit') <> (x.record_seq is not null) "
        "or (x.kind = 'credit' and (r.status <> 'credited' or r.reduction_g = 0))",
    ),
    "credit_amount_mismatch": (
        "a credit transfer moves exactly the record's grams from its platform's issuance "
        "account for its methodology to the record's citizen",
        "select cast(x.id as varchar(20)) from transfers x "
        "join records r on r.seq = x.record_seq "
        "left join accounts a on a.id = x.credit_account_id "
        "left join accounts i on i.id = x.debit_account_id "
        "where x.kind = 'credit' and (x.amount <> r.reduction_g "
        "or a.subject_id is null or a.subject_id <> r.subject_id "
        "or i.kind is null or i.kind <> 'issuance' or i.platform_id <> r.platform_id "
        "or i.methodology <> r.methodology)",
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
    "transfer_orphaned": (
        "every transfer moves between existing accounts, names an existing record when it "
        "names one, and is linked, if at all, to the first transfer of its entry",
        "select cast(x.id as varchar(20)) from transfers x "
        "left join accounts d on d.id = x.debit_account_id "
        "left join accounts c on c.id = x.credit_account_id "
        "left join records r on r.seq = x.record_seq "
        "left join transfers f on f.id = x.linked_to "
        "where d.id is null or c.id is null or (x.record_seq is not null and r.seq is null) "
        "or (x.linked_to is not null and (f.id is null or f.linked_to is not null "
        "or f.kind <> x.kind or f.id > x.id))",
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
    "transfer_mixed_units": (
        "no transfer moves grams into points or points into grams",
        "select cast(x.id as varchar(20)) from transfers x "
        "join accounts d on d.id = x.debit_account_id "
        "join accounts c on c.id = x.credit_account_id where d.unit <> c.unit",
    ),
    "balance_negative": (
        "no citizen, points, retired, reward or expired account is below zero",
        "select cast(a.id as varchar(20)) from accounts a join balances b on b.account_id = a.id "
        "where a.kind not in ('issuance', 'programme') and b.balance_g < 0",
    ),
    "retired_taken_out": (
        "nothing is ever taken out of retired grams",
        "select cast(x.id as varchar(20)) from transfers x "
        "join accounts a on a.id = x.debit_account_id where a.kind = 'retired'",
    ),
    "reversal_mismatch": (
        "a reversal mirrors the transfer it reverses: the same amount, the other way",
        "select cast(x.id as varchar(20)) from transfers x "
        "left join transfers r on r.id = x.reverses "
        "where x.reverses is not null and (r.id is null or r.amount <> x.amount "
        "or r.debit_account_id <> x.credit_account_id "
        "or r.credit_account_id <> x.debit_account_id)",
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
    transfers: int
    issued_g: int


def totals(app: App) -> LedgerTotals:
    """Counts and grams issued (credited to citizens), for the verify summary."""
    with app.engine.connect() as conn:
        accounts, transfers, issued = conn.execute(
            text(
                "select (select count(*) from accounts), (select count(*) from transfers), "
                "(select coalesce(sum(amount), 0) from transfers where kind = 'credit')"
            )
        ).one()
    return LedgerTotals(int(accounts), int(transfers), int(issued))
