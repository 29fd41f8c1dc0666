"""Double-entry ledger values: integer grams, immutable entries that sum to zero.

An entry moves grams of CO2e between accounts; its postings sum to zero. The ledger is
append-only: a correction is a reversing entry, never an edit. Accounts are named
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


def credit(citizen: str, issuance: str, grams: int) -> Entry:
    """The entry that credits a citizen for a record quantified under a methodology."""
    return Entry("credit", (Posting(citizen, grams), Posting(issuance, -grams)))


def citizen_account(pseudonym: str) -> str:
    """The account code of a citizen."""
    return f"citizen:{pseudonym}"


def issuance_account(platform: str, methodology: str) -> str:
    """The account code of what a platform issued under a methodology version."""
    return f"issuance:{platform}:{methodology}"
