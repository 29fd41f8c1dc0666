"""Personal carbon accounts, stated once: what a citizen's operation may do, and why it is
refused.

The operations a citizen (or, for a reversal, the exchange's operator) asks for, each under an
idempotency key the client chooses:

- **redeem** a reward: open now (inside its window), under the citizen's limit for it, paid from
  their grams (or a programme's points) without taking the account below zero, and one taken
  from its stock while any is left (a coupon hands out its next unclaimed code, a tree its
  number). Checks in this order; the first that fails is the answer.
- **retire** grams against one's own footprint: a positive amount the account holds.
- **give** grams or points to another citizen: a positive amount, to someone else, at most
  `MAX_GIFT` in one gift and `MAX_GIFTS_PER_DAY` given in one China day, held by the giver.
- **reverse** an entry (operator): a credit, a redemption or a gift, once.

The same key sent again with the same request is answered with the first answer and changes
nothing; with another request it is refused (`idempotency_conflict`). A refused operation
changes nothing and leaves no trace: sent again with the same key, it is decided again.

A popular reward keeps its stock, and the grams paid for it, in `SHARDS` parts, so that
redemptions of it at the same moment do not wait for one another: `stock_shards` says how a
stock is split and which numbers (a tree's) each part hands out. What a reward has handed out
is never kept as a count of its own: it is what its parts have taken, which `ledger verify`
recounts from the redemptions.

This module is the statement the SQL renderings (`adapters/sql/operations.py`: Python over
SQL, and one PL/pgSQL function per operation on PostgreSQL) are held to; the standard library
only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from puhui.domain.errors import InsufficientBalance, RefusedError

# Gifts: at most this much in one gift, and given by one citizen in one day (China time), by
# unit (`g` grams, `pt` points).
MAX_GIFT = {"g": 100_000, "pt": 100_000}
MAX_GIFTS_PER_DAY = {"g": 200_000, "pt": 200_000}
# An idempotency key: 1 to MAX_KEY printable characters.
MAX_KEY = 128
REWARD_KINDS = ("coupon", "tree", "donation")
# Entries a reversal may undo. A retirement never is; awards and expiries follow their credit.
REVERSIBLE = ("credit", "redeem", "transfer")
# A reward's stock, and the account its price is paid into, are kept in this many parts at
# most (no more parts than a limited stock has units).
SHARDS = 16
# The numbers of an unlimited stock's part come in blocks this large (a limited stock is
# smaller: its parts number 1 to `stock`).
NUMBER_BLOCK = 10**9


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to an operation: the same for a re-sent request with the same key.

    Attributes:
        operation: its id (certificates and the audit trail name it).
        kind: redeem, retire, transfer or reverse.
        result: what was done (JSON-ready): amounts, entry ids, the coupon code handed out, the
            tree's number, the certificate id.
        replayed: whether this answers a request already done.
    """

    operation: int
    kind: str
    result: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an operation may not be done: a stable code and a sentence for people.

    Attributes:
        held, needed, unit: for `insufficient_balance`, what the account holds and what the
            operation takes out of it.
    """

    code: str
    message: str
    held: int | None = None
    needed: int | None = None
    unit: str | None = None

    def error(self) -> RefusedError:
        """The error that refuses the operation."""
        if self.code == "insufficient_balance":
            return InsufficientBalance(
                self.held or 0, self.needed or 0, self.unit or "g", self.message
            )
        return RefusedError(self.code, self.message)


@dataclass(frozen=True, slots=True)
class RewardTerms:
    """What a redemption of a reward must respect.

    Attributes:
        price, unit: what one costs, in grams (`g`) or points (`pt`) of `programme`.
        stock: units made available; None for unlimited (a coupon's stock is its codes).
    """

    code: str
    kind: str
    price: int
    unit: str
    programme: str | None
    per_citizen_limit: int | None
    valid_from: datetime | None
    valid_to: datetime | None
    stock: int | None


def key_refused(key: str) -> str | None:
    """Why an idempotency key cannot be used (None when it can)."""
    if not key or len(key) > MAX_KEY or not key.isprintable():
        return f"an idempotency key has 1 to {MAX_KEY} printable characters"
    return None


def replay_refused(stored_digest: str, digest: str) -> Refusal | None:
    """A key used before: the first answer again (None), or a refusal when the request was
    another."""
    if stored_digest != digest:
        return Refusal("idempotency_conflict", "this idempotency key was used for another request")
    return None


def redemption_refused(terms: RewardTerms, at: datetime, redeemed_before: int) -> Refusal | None:
    """The checks of a redemption made before paying: the reward's window, and the citizen's
    limit (`redeemed_before`: their redemptions of it before this one)."""
    if (terms.valid_from is not None and at < terms.valid_from) or (
        terms.valid_to is not None and at >= terms.valid_to
    ):
        return Refusal("not_available", f"{terms.code} cannot be redeemed now")
    if terms.per_citizen_limit is not None and redeemed_before >= terms.per_citizen_limit:
        return Refusal(
            "limit_reached",
            f"{terms.code} can be redeemed {terms.per_citizen_limit} times per citizen",
        )
    return None


def out_of_stock(terms: RewardTerms) -> Refusal:
    """No unit of the reward left (no part of its stock, no unclaimed coupon code)."""
    return Refusal("out_of_stock", f"{terms.code} is out of stock")


def insufficient(held: int, needed: int, unit: str, asked: str = "") -> Refusal:
    """An account holding less than the operation takes: says both (`asked`: what asks for
    the amount, e.g. `river-clean costs 500 g`)."""
    asked = asked or f"{needed} {unit} are needed"
    return Refusal(
        "insufficient_balance", f"{asked}; the account holds {held} {unit}", held, needed, unit
    )


def debit_allowed(held: int, amount: int) -> bool:
    """Whether an account that may not go below zero can give `amount`."""
    return held >= amount


def gift_refused(amount: int, unit: str, given_today: int) -> Refusal | None:
    """The limits of a gift (`given_today`: what the giver gave in this China day before)."""
    if amount > MAX_GIFT[unit]:
        return Refusal("gift_too_large", f"a gift is at most {MAX_GIFT[unit]} {unit}")
    if given_today + amount > MAX_GIFTS_PER_DAY[unit]:
        return Refusal(
            "daily_gift_limit", f"a citizen gives at most {MAX_GIFTS_PER_DAY[unit]} {unit} a day"
        )
    return None


def reversal_refused(
    entry: int, kind: str, reversed_already: bool, certified: bool = False
) -> Refusal | None:
    """Whether an entry may be reversed. A certified credit's grams are in carbon units now:
    it is reversed by the market, from its batch's buffer (`domain.market`)."""
    if kind not in REVERSIBLE:
        return Refusal("not_reversible", f"a {kind} entry cannot be reversed")
    if reversed_already:
        return Refusal("already_reversed", f"entry {entry} is reversed already")
    if certified:
        return Refusal(
            "certified",
            f"entry {entry} is certified into carbon units: reverse it with "
            "`puhui market reverse`, which draws on its batch's buffer",
        )
    return None


@dataclass(frozen=True, slots=True)
class Shard:
    """One part of a reward's stock.

    Attributes:
        allotted: units it may hand out; None for an unlimited stock.
        next_number: the number it hands out next (a tree's).
    """

    shard: int
    allotted: int | None
    next_number: int


def stock_shards(stock: int | None, kind: str) -> list[Shard]:
    """How a reward's stock is kept: a limited stock in up to SHARDS parts of consecutive
    numbers (all its numbers 1 to `stock` once sold out), an unlimited one in SHARDS parts each
    numbering its own blocks of NUMBER_BLOCK (`after`). A coupon's units are its codes: its
    parts only receive what is paid.

    A redemption takes from the first part with a unit left that no other redemption is taking
    from at that moment: one at a time, numbers go 1, 2, 3…; at the same moment, they go to
    different parts, so numbers are unique but not always in the order of redemptions."""
    if kind == "coupon" or stock is None:
        return [Shard(k, None, k * NUMBER_BLOCK + 1) for k in range(SHARDS)]
    parts = max(1, min(SHARDS, stock))
    shards, first = [], 1
    for k in range(parts):
        allotted = stock // parts + (k < stock % parts)
        shards.append(Shard(k, allotted, first))
        first += allotted
    return shards


def after(number: int) -> int:
    """The number a part hands out after `number`: the next, or, at the end of one of its
    blocks of an unlimited stock, the start of its next block (SHARDS blocks further)."""
    return number + 1 + ((SHARDS - 1) * NUMBER_BLOCK if number % NUMBER_BLOCK == 0 else 0)


def points_earned(grams: int, points_per_kg: Decimal) -> int:
    """The points a credit earns in a programme: grams × rate per kg, floored."""
    return int((Decimal(grams) * points_per_kg / 1000).to_integral_value(ROUND_FLOOR))
