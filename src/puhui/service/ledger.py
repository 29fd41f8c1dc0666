"""Ledger verification: every invariant re-checked from the stored rows.

`verify` returns a list of violations (empty when the ledger is sound) and never stops at the
first, like a batch's checks. Each check is one set-based query (`service.ports.Audit`, on SQL
`adapters.sql.audit`), so it scales with the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from puhui.bootstrap import App


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, with up to ten examples."""

    check: str
    count: int
    examples: tuple[str, ...]


# The invariants, by the name `ledger verify` reports them under.
CHECKS: dict[str, str] = {
    "transfer_not_positive": "every transfer moves a positive amount between two accounts",
    "balance_mismatch": (
        "every account's balance is what its transfers brought in less what they took out"
    ),
    "ledger_total": (
        "all balances of a unit together sum to zero: every gram and point is in one place"
    ),
    "credit_missing": "every credited record with grams has its credit transfer",
    "credit_without_credited_record": (
        "every credit transfer belongs to a credited record, and only credits to records"
    ),
    "credit_amount_mismatch": (
        "a credit transfer moves exactly the record's grams from its platform's issuance "
        "account for its methodology to the record's citizen"
    ),
    "balance_orphaned": "every balance belongs to an account",
    "account_orphaned": "every account names an existing citizen or platform",
    "transfer_orphaned": (
        "every transfer moves between existing accounts, names an existing record when it "
        "names one, and is linked, if at all, to the first transfer of its entry"
    ),
    "record_orphaned": "every record names an existing platform, batch, citizen and calculation",
    "transfer_mixed_units": "no transfer moves grams into points or points into grams",
    "balance_negative": "no citizen, points, retired, reward or expired account is below zero",
    "retired_taken_out": "nothing is ever taken out of retired grams",
    "reversal_mismatch": (
        "a reversal mirrors the transfer it reverses: the same amount, the other way"
    ),
    "stock_mismatch": (
        "what a reward handed out (its parts' units taken, a coupon's codes claimed) is what "
        "was redeemed, counted from its redemptions and from the transfers paid into its parts, "
        "and its stock is what its parts were allotted (a coupon: its codes)"
    ),
    "ref_credited_twice": "no (scene, ref) is credited twice",
    "trip_credited_twice": (
        "no two credited trips of a citizen overlap by more than half of the shorter"
    ),
    "tally_mismatch": (
        "the statistics' tallies (dimension:key:status:reason) recount exactly from records"
    ),
}


def verify(app: App) -> list[Violation]:
    """Re-check every ledger invariant; an empty list means the ledger is sound."""
    breaking = app.audit().breaking(list(CHECKS))
    return [Violation(name, len(rows), tuple(rows[:10])) for name, rows in breaking.items() if rows]


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Size of the ledger."""

    accounts: int
    transfers: int
    issued_g: int


def totals(app: App) -> LedgerTotals:
    """Counts and grams issued (credited to citizens), for the verify summary."""
    return LedgerTotals(*app.audit().size())
