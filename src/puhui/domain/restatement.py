"""Restatement, stated once: what a correction of a methodology does to the credits its
superseded versions computed.

A restatement takes a target version (`id@version`) and the versions it supersedes
(`Catalogue.superseded_by`). For each citizen's scene, in receive order, it settles every
credit again as settlement would have with the target in the catalogue:

1. **Calculation.** A credit computed by a superseded version, of a day the target is in force
   on (every day of the superseded version for a correction; from its `effective_from` for a
   revision), is computed by the target from its stored inputs (scene, region, material,
   amount). Other credits keep their calculation.
2. **Caps.** Each credit then gets what remains under its (new or kept) methodology's caps,
   given the credits before it, exactly as `domain.settlement` applies them: count caps first,
   then gram caps, day before month. So a credit whose own calculation did not change may still
   change, when an earlier one of the same day took more or less of a cap.
3. **Kept records.** A credit reversed since (on the ledger or through its batch's buffer)
   counts with its grams, as settlement counted it, and is never restated. A record held and
   later rejected (or found another node's duplicate)
   counts with the grams it held for the records received before its decision, as in
   settlement; it is never restated. A citizen's scene with a record still held is left for a
   later run: its records are restated once it is decided.

The difference between the grams a credit holds now and its restated grams is what the
restatement posts (per citizen, as `restated` transfers: `adapters/sql/restatement.py`). Nothing
is edited: the original receipt and credit stay, the restatement is recorded beside them, and
running it again finds nothing more to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from puhui.domain.methodology import MILLI, reduction_for
from puhui.domain.settlement import Book, Candidate, Caps


@dataclass(frozen=True, slots=True)
class Basis:
    """What computes a credit: a stored calculation, its methodology and that one's caps.

    Attributes:
        calculation: the stored calculation's id (or any key naming it).
        methodology: `id@version`.
        per_unit: its reduction per unit of activity, exact grams.
        caps: its methodology's caps for the credit's scene.
    """

    calculation: object
    methodology: str
    per_unit: Decimal
    caps: Caps


@dataclass(frozen=True, slots=True)
class Credit:
    """A record of one citizen's scene as a restatement sees it.

    Attributes:
        seq: receive order.
        day: the China day it started on.
        amount_milli: its amount in thousandths of its unit.
        basis: what computes it now.
        grams: what it is credited now (held, for a held record).
        counts_until: for a held record later rejected: the receive position of that
            decision; it counts its `grams` for records received before, and is never restated.
        kept: a credit reversed since: it counts its `grams` and is never restated.
    """

    seq: int
    day: date
    amount_milli: int
    basis: Basis
    grams: int
    counts_until: int | None = None
    kept: bool = False

    @property
    def settled(self) -> bool:
        """Whether it is a credit a restatement settles again (not one reversed since, nor a
        rejected held record that only counted for a while)."""
        return self.counts_until is None and not self.kept


@dataclass(frozen=True, slots=True)
class Change:
    """A credit the restatement changes: its calculation, its grams, or both."""

    seq: int
    before: Basis
    after: Basis
    grams_before: int
    grams: int

    @property
    def delta_g(self) -> int:
        """What it posts: grams now less grams before."""
        return self.grams - self.grams_before


def settle_group(credits: Sequence[Credit], basis: Callable[[Credit], Basis]) -> list[int]:
    """The grams each record of one citizen's scene gets, in receive order, under the bases
    given: `domain.settlement`'s caps re-applied. A rejected held record counts its grams
    until its decision and keeps them.

    Raises:
        ValueError: records not in increasing receive order.
    """
    book = Book()
    stops: list[tuple[int, date, int]] = []
    grams: list[int] = []
    last: int | None = None
    for c in credits:
        if last is not None and c.seq <= last:
            raise ValueError(f"record {c.seq} is not after {last} in receive order")
        last = c.seq
        for stop in [s for s in stops if s[0] <= c.seq]:
            book.use(None, None, stop[1], -1, -stop[2])
            stops.remove(stop)
        if not c.settled:
            book.use(None, None, c.day, 1, c.grams)
            if c.counts_until is not None:
                stops.append((c.counts_until, c.day, c.grams))
            grams.append(c.grams)
            continue
        b = basis(c)
        computed = reduction_for(Decimal(c.amount_milli) * MILLI, b.per_unit)
        candidate = Candidate(
            seq=c.seq, key=None, digest="", day=c.day, computed_g=computed,
            methodology=b.methodology, caps=b.caps,
        )  # fmt: skip
        grams.append(book.credit_within_caps(candidate))
    return grams


def restate(credits: Iterable[Credit], target: Callable[[Credit], Basis | None]) -> list[Change]:
    """The changes a restatement makes to one citizen's scene: `credits` in receive order,
    `target` the restated basis of a credit it recomputes (None: keeps its basis)."""
    ordered = list(credits)
    after = {c.seq: (target(c) if c.settled else None) or c.basis for c in ordered}
    grams = settle_group(ordered, lambda c: after[c.seq])
    return [
        Change(c.seq, c.basis, after[c.seq], c.grams, g)
        for c, g in zip(ordered, grams, strict=True)
        if c.settled and (after[c.seq].calculation != c.basis.calculation or g != c.grams)
    ]
