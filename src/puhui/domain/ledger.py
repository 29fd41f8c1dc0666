"""Double-entry ledger values: integer grams, immutable entries that sum to zero, stored as
transfers.

An entry moves grams of CO2e (or points) between accounts; its postings sum to zero. It is
stored as transfers, TigerBeetle's model: one row per movement of an amount from one account
(debited) to another (credited), so that a credit, the bulk of the ledger, is one row. An entry
of more than two postings (the points of a run of awards, one per citizen) becomes one transfer
per leg on its many side, linked to the first (`transfers_of`). The ledger is append-only: a
correction is a reversing transfer, never an edit. Accounts are named
`citizen:<pseudonym>` (what a citizen holds) and `issuance:<platform>:<methodology@version>`
(what a platform's records issued under a methodology; its balance is the negative of all it
issued).
"""

from __future__ import annotations

from dataclasses import dataclass

from puhui.domain.errors import UnbalancedEntryError


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of an entry: grams added to (positive) or taken from (negative) an account."""

    account: str
    amount_g: int

    def __post_init__(self) -> None:
        if not isinstance(self.amount_g, int) or isinstance(self.amount_g, bool):
            raise UnbalancedEntryError(f"amounts are whole grams, not {self.amount_g!r}")
        if self.amount_g == 0:
            raise UnbalancedEntryError("a posting of zero grams")


@dataclass(frozen=True, slots=True)
class Entry:
    """A balanced set of postings.

    >>> Entry("credit", (Posting("citizen:ab", 120), Posting("issuance:amap:m@1", -120))).kind
    'credit'
    """

    kind: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise UnbalancedEntryError("an entry needs at least two postings")
        total = sum(p.amount_g for p in self.postings)
        if total != 0:
            raise UnbalancedEntryError(f"postings sum to {total} g, not 0")


@dataclass(frozen=True, slots=True)
class Transfer:
    """`amount` (positive) moved out of account `debit` into account `credit`.

    >>> Transfer("issuance:amap:m@1", "citizen:ab", 120).amount
    120
    """

    debit: str
    credit: str
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool) or self.amount <= 0:
            raise UnbalancedEntryError(
                f"a transfer moves a positive whole amount, not {self.amount!r}"
            )
        if self.debit == self.credit:
            raise UnbalancedEntryError("a transfer moves between two accounts")


def transfers_of(entry: Entry) -> tuple[Transfer, ...]:
    """The transfers that store an entry: each posting taken out is paid, in order, into the
    postings added, in order. A two-posting entry is one transfer; one account paying many (an
    award run) or many paying one (an expiry run) is one transfer per leg of the many side.

    >>> [(t.debit, t.credit, t.amount) for t in transfers_of(
    ...     Entry("award", (Posting("a", 3), Posting("b", 2), Posting("p", -5))))]
    [('p', 'a', 3), ('p', 'b', 2)]
    """
    takers = [p.account for p in entry.postings if p.amount_g > 0]
    wanted = [p.amount_g for p in entry.postings if p.amount_g > 0]
    moved = []
    i = 0
    for giver in (p for p in entry.postings if p.amount_g < 0):
        left = -giver.amount_g
        while left:
            part = min(left, wanted[i])
            moved.append(Transfer(giver.account, takers[i], part))
            left -= part
            wanted[i] -= part
            if not wanted[i]:
                i += 1
    return tuple(moved)


def credit(citizen: str, issuance: str, grams: int) -> Entry:
    """The entry that credits a citizen for a record quantified under a methodology."""
    return Entry("credit", (Posting(citizen, grams), Posting(issuance, -grams)))


def citizen_account(pseudonym: str) -> str:
    """The account code of a citizen."""
    return f"citizen:{pseudonym}"


def issuance_account(platform: str, methodology: str) -> str:
    """The account code of what a platform issued under a methodology version."""
    return f"issuance:{platform}:{methodology}"
