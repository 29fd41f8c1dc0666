"""Worked examples of ledger values: whole grams, balanced entries, nothing else."""

from __future__ import annotations

from decimal import Decimal

import pytest

from puhui.domain.errors import LedgerError, UnbalancedEntryError
from puhui.domain.ledger import (
    Entry,
    Posting,
    Transfer,
    citizen_account,
    credit,
    issuance_account,
    transfers_of,
)

CITIZEN = citizen_account("ab12")
ISSUANCE = issuance_account("amap", "cn-common@1.0.0")


def test_a_credit_moves_grams_from_the_issuance_account_to_the_citizen() -> None:
    """1079 g for a Beijing bus ride: +1079 to the citizen, −1079 to what amap issued."""
    entry = credit(CITIZEN, ISSUANCE, 1079)
    assert entry.kind == "credit"
    assert entry.postings == (Posting("citizen:ab12", 1079), Posting(ISSUANCE, -1079))
    assert sum(p.amount_g for p in entry.postings) == 0


def test_account_codes_name_the_citizen_and_the_platform_and_methodology() -> None:
    """`citizen:<pseudonym>` and `issuance:<platform>:<methodology@version>`."""
    assert CITIZEN == "citizen:ab12"
    assert ISSUANCE == "issuance:amap:cn-common@1.0.0"


def test_an_entry_of_three_postings_may_balance() -> None:
    """A split: 100 g to two citizens out of one issuance account."""
    entry = Entry(
        "credit", (Posting("citizen:a", 60), Posting("citizen:b", 40), Posting(ISSUANCE, -100))
    )
    assert len(entry.postings) == 3


@pytest.mark.parametrize(
    "postings",
    [
        (Posting(CITIZEN, 1079), Posting(ISSUANCE, -1078)),
        (Posting(CITIZEN, 1), Posting(ISSUANCE, 1)),
        (Posting("citizen:a", 60), Posting("citizen:b", 40), Posting(ISSUANCE, -99)),
    ],
)
def test_an_unbalanced_entry_is_refused(postings: tuple[Posting, ...]) -> None:
    """Postings must sum to exactly zero grams."""
    with pytest.raises(UnbalancedEntryError, match="sum to"):
        Entry("credit", postings)


def test_a_single_posting_is_refused_even_of_zero_sum() -> None:
    """An entry needs two sides."""
    with pytest.raises(UnbalancedEntryError, match="two postings"):
        Entry("credit", (Posting(CITIZEN, 5),))
    with pytest.raises(UnbalancedEntryError, match="two postings"):
        Entry("credit", ())


@pytest.mark.parametrize("amount", [0, -0])
def test_a_posting_of_zero_grams_is_refused(amount: int) -> None:
    """A zero posting moves nothing and would hide a missing credit."""
    with pytest.raises(UnbalancedEntryError, match="zero"):
        Posting(CITIZEN, amount)


def test_a_credit_of_zero_grams_is_refused() -> None:
    """A record capped to nothing gets no entry, not an entry of zero."""
    with pytest.raises(UnbalancedEntryError):
        credit(CITIZEN, ISSUANCE, 0)


@pytest.mark.parametrize("amount", [1079.0, 0.5, Decimal("1079"), True, "1079", None])
def test_amounts_are_whole_grams_as_int_only(amount: object) -> None:
    """No float, Decimal, bool or text ever reaches a ledger amount."""
    with pytest.raises(UnbalancedEntryError, match="whole grams"):
        Posting(CITIZEN, amount)  # type: ignore[arg-type]


def test_ledger_refusals_are_ledger_errors() -> None:
    """Callers catch every refused entry as a LedgerError."""
    assert issubclass(UnbalancedEntryError, LedgerError)


def test_entries_and_postings_are_immutable() -> None:
    """The ledger is append-only; its values cannot be edited either."""
    entry = credit(CITIZEN, ISSUANCE, 5)
    with pytest.raises(AttributeError):
        entry.kind = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        entry.postings[0].amount_g = 6  # type: ignore[misc]


def test_a_two_posting_entry_is_stored_as_one_transfer() -> None:
    """A credit is one row: from what the platform issued to the citizen."""
    assert transfers_of(credit(CITIZEN, ISSUANCE, 1079)) == (Transfer(ISSUANCE, CITIZEN, 1079),)


def test_one_account_paying_many_is_one_transfer_per_payee() -> None:
    """An award run: the programme pays each citizen's points."""
    run = Entry("award", (Posting("a", 3), Posting("b", 2), Posting("programme", -5)))
    assert transfers_of(run) == (Transfer("programme", "a", 3), Transfer("programme", "b", 2))


def test_many_accounts_paying_one_is_one_transfer_per_payer() -> None:
    """An expiry run: each citizen's lapsed points go to the programme's expired account."""
    run = Entry("expire", (Posting("a", -3), Posting("b", -2), Posting("expired", 5)))
    assert transfers_of(run) == (Transfer("a", "expired", 3), Transfer("b", "expired", 2))


def test_any_balanced_entry_is_stored_as_transfers_that_move_the_same_amounts() -> None:
    """Many to many: every account ends with the same change as its posting."""
    entry = Entry("split", (Posting("a", -7), Posting("b", -4), Posting("c", 5), Posting("d", 6)))
    change: dict[str, int] = {}
    for moved in transfers_of(entry):
        change[moved.debit] = change.get(moved.debit, 0) - moved.amount
        change[moved.credit] = change.get(moved.credit, 0) + moved.amount
    assert change == {p.account: p.amount_g for p in entry.postings}


@pytest.mark.parametrize(
    ("debit", "credit_", "amount"), [("a", "b", 0), ("a", "b", -5), ("a", "a", 5)]
)
def test_a_transfer_moves_a_positive_amount_between_two_accounts(
    debit: str, credit_: str, amount: int
) -> None:
    with pytest.raises(UnbalancedEntryError):
        Transfer(debit, credit_, amount)
