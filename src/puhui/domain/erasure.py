"""Erasure: what puhui keeps of a citizen who asked to be forgotten, and why.

A citizen (or an operator, on a request whose identity was verified outside puhui) erases the
person. Four things happen, in one transaction:

1. **The link is destroyed.** A citizen is known only by a pseudonym, a keyed hash of the
   phone or ID number (`domain.subjects`); the number itself is never stored. The pseudonym is
   replaced by a random tombstone that nothing can compute again, so no phone number leads to
   the account any more. A record that arrives later for the same number starts a new account.
2. **Behaviour details go** (`ERASED`). What could place the person somewhere at some time,
   on some device, or match them to another party's data (times of day, coordinates, device,
   evidence references, the content digest) is deleted from every record of the person; what
   remains is the day in China time (`kept_day_ms`), which the published statistics count by.
3. **Every grant ends.** Each grant to a member platform is revoked in the consent ledger
   (whose rows name the account, never the number); sign-in codes not yet used go.
4. **Amounts stay, anonymous** (`KEPT`). The ledger is append-only and every gram is in one
   place: the account's transfers and balance stay as they were, on an account that no longer
   belongs to anyone, so totals, statistics and audits still add up, and each credit can still
   be recomputed from its quantity and its pinned calculation.
"""

from __future__ import annotations

import secrets

from puhui.domain import china_time

TOMBSTONE = "erased:"

# The fields of a record that are deleted, and why each could identify a person.
ERASED: dict[str, str] = {
    "start_ms, end_ms": "the times of day a behaviour began and ended (only the day is kept)",
    "extra, device": "the coordinates and the device of the behaviour",
    "ref": "the evidence reference (transit-card tap, payment order, invoice, receipt number), "
    "which other parties hold too",
    "digest": "the hash of the record's normalised content, which anyone holding the content "
    "could confirm",
    "detail": "which fields were missing or ill-typed, quoted from what was sent",
}

# What is kept, and why.
KEPT: dict[str, str] = {
    "transfers and balances": "the ledger is append-only and every gram stays in one place: "
    "totals, statistics and audits must still add up",
    "record_id, platform, batch": "a member platform's own reference, linked to no person any "
    "more; kept so that a re-sent record is not credited a second time",
    "scene, region, day, quantity, calculation, grams, status and reason": "the published "
    "statistics count by them, and each credit stays recomputable",
    "the erasure itself": "when, by whom (citizen or operator) and on what grounds, without "
    "any identifier, so that an auditor can see why an account has no owner",
}


def tombstone() -> str:
    """A pseudonym that no identifier hashes to (random; 39 characters)."""
    return TOMBSTONE + secrets.token_hex(16)


def is_erased(pseudonym: str) -> bool:
    """Whether a stored pseudonym is an erased citizen's tombstone."""
    return pseudonym.startswith(TOMBSTONE)


def kept_day_ms(start_ms: int) -> int:
    """What is kept of a behaviour's start: the first millisecond of its day in China time."""
    return china_time.day_start_ms(china_time.day_of_ms(start_ms))
