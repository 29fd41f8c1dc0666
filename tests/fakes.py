"""Fakes of the ports of the personal carbon accounts, in memory: what a unit test of a use case
runs on instead of a database. They apply the rules of `domain.accounts` to dictionaries, as
the SQL renderings apply them to tables, so that a test of a refusal reads as the rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from puhui.domain import accounts as rules
from puhui.domain import china_time
from puhui.domain.accounts import Outcome, RewardTerms, Shard
from puhui.domain.errors import AlreadyExistsError, InputError, NotFoundError


@dataclass
class Book:
    """Every account's balance (by name: `citizen:<pseudonym>`, `points:<programme>:<who>`,
    `retired:<who>`, `reward:<code>#<part>`), the catalogue, and the operations done."""

    balances: dict[str, int] = field(default_factory=dict)
    rewards: dict[str, dict[str, Any]] = field(default_factory=dict)
    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    codes: dict[str, list[list[Any]]] = field(default_factory=dict)  # [code, operation or None]
    programmes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    operations: dict[tuple[str, str], tuple[str, Outcome]] = field(default_factory=dict)
    redeemed: dict[tuple[str, str], int] = field(default_factory=dict)
    reversed: set[int] = field(default_factory=set)
    transfers: list[tuple[str, str, str, int, datetime]] = field(default_factory=list)


class FakeRewards:
    """`service.ports.Rewards` over a `Book`."""

    def __init__(self, book: Book) -> None:
        self.book = book

    def add_programme(
        self,
        code: str,
        name: str,
        platform: str | None,
        points_per_kg: Decimal,
        expiry_days: int | None,
        starts_at: datetime,
        at: datetime,
    ) -> None:
        if code in self.book.programmes:
            raise AlreadyExistsError(f"programme {code!r} exists already")
        self.book.programmes[code] = (code, name, platform, points_per_kg, expiry_days, starts_at)

    def programmes(self) -> list[tuple[Any, ...]]:
        return [self.book.programmes[c] for c in sorted(self.book.programmes)]

    def add_reward(self, values: dict[str, Any], shards: Sequence[Shard]) -> None:
        code = values["code"]
        if code in self.book.rewards:
            raise AlreadyExistsError(f"reward {code!r} exists already")
        if values["programme"] and values["programme"] not in self.book.programmes:
            raise NotFoundError(f"no programme {values['programme']!r}")
        self.book.rewards[code] = dict(values)
        self.book.parts[code] = [
            {"shard": s.shard, "allotted": s.allotted, "taken": 0, "next": s.next_number}
            for s in shards
        ]
        self.book.codes[code] = []

    def add_codes(self, reward: str, codes: Sequence[str]) -> int:
        if reward not in self.book.rewards:
            raise NotFoundError(f"no reward {reward!r}")
        if self.book.rewards[reward]["kind"] != "coupon":
            raise InputError(f"{reward} is not a coupon")
        known = {c for c, _ in self.book.codes[reward]}
        new = [c for c in codes if c not in known]
        self.book.codes[reward] += [[c, None] for c in new]
        self.book.rewards[reward]["stock"] += len(new)
        return len(new)

    def rewards(self, code: str | None) -> list[tuple[Any, ...]]:
        rows = []
        for c in sorted(self.book.rewards):
            if code is not None and c != code:
                continue
            v = self.book.rewards[c]
            if v["kind"] == "coupon":
                remaining: int | None = sum(1 for _, op in self.book.codes[c] if op is None)
            elif v["stock"] is None:
                remaining = None
            else:
                remaining = sum(p["allotted"] - p["taken"] for p in self.book.parts[c])
            rows.append(
                (c, v["name"], v["kind"], v["issuer"], v["project"], v["price_g"],
                 v["price_points"], v["programme"], v["stock"], remaining,
                 v["per_citizen_limit"], v["valid_from"], v["valid_to"])
            )  # fmt: skip
        return rows


class FakeOperations:
    """`service.ports.Operations` over a `Book`: the rules of `domain.accounts`, in the order
    they refuse, applied to dictionaries."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.next_operation = 1

    def _claim(self, who: str, key: str, digest: str) -> int | Outcome:
        stored = self.book.operations.get((who, key))
        if stored is None:
            return self.next_operation
        refused = rules.replay_refused(stored[0], digest)
        if refused is not None:
            raise refused.error()
        first = stored[1]
        return Outcome(first.operation, first.kind, first.result, replayed=True)

    def _done(self, who: str, key: str, digest: str, kind: str, result: dict[str, Any]) -> Outcome:
        done = Outcome(self.next_operation, kind, result)
        self.book.operations[(who, key)] = (digest, done)
        self.next_operation += 1
        return done

    def _move(self, kind: str, source: str, sink: str, amount: int, at: datetime) -> int:
        self.book.balances[source] = self.book.balances.get(source, 0) - amount
        self.book.balances[sink] = self.book.balances.get(sink, 0) + amount
        self.book.transfers.append((kind, source, sink, amount, at))
        return len(self.book.transfers)

    def redeem(
        self, pseudonym: str, reward: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        if reward not in self.book.rewards:
            raise NotFoundError(f"no reward {reward!r}")
        claimed = self._claim(pseudonym, key, digest)
        if isinstance(claimed, Outcome):
            return claimed
        v = self.book.rewards[reward]
        unit = "g" if v["price_g"] is not None else "pt"
        price = v["price_g"] if unit == "g" else v["price_points"]
        terms = RewardTerms(
            reward, v["kind"], price, unit, v["programme"], v["per_citizen_limit"],
            v["valid_from"], v["valid_to"], v["stock"],
        )  # fmt: skip
        payer = f"citizen:{pseudonym}" if unit == "g" else f"points:{v['programme']}:{pseudonym}"
        refused = rules.redemption_refused(
            terms, at, self.book.redeemed.get((pseudonym, reward), 0)
        )
        held = self.book.balances.get(payer, 0)
        if refused is None and not rules.debit_allowed(held, price):
            refused = rules.insufficient(held, price, unit, f"{reward} costs {price} {unit}")
        if refused is None:
            free = [c for c in self.book.codes[reward] if c[1] is None]
            parts = [
                p
                for p in self.book.parts[reward]
                if p["allotted"] is None or p["taken"] < p["allotted"]
            ]
            if (v["kind"] == "coupon" and not free) or (v["kind"] != "coupon" and not parts):
                refused = rules.out_of_stock(terms)
        if refused is not None:
            raise refused.error()
        result: dict[str, Any] = {"reward": reward, "kind": v["kind"], "unit": unit, "price": price}
        if v["kind"] == "coupon":
            free[0][1] = claimed
            result["coupon_code"] = free[0][0]
            part = self.book.parts[reward][claimed % len(self.book.parts[reward])]
        else:
            part = parts[0]
            part["taken"] += 1
            number, part["next"] = part["next"], rules.after(part["next"])
            result |= {"tree_number": number} if v["kind"] == "tree" else {}
            result["project"] = v["project"]
        result["entry"] = self._move("redeem", payer, f"reward:{reward}#{part['shard']}", price, at)
        self.book.redeemed[(pseudonym, reward)] = self.book.redeemed.get((pseudonym, reward), 0) + 1
        return self._done(pseudonym, key, digest, "redeem", result)

    def retire(
        self,
        pseudonym: str,
        grams: int,
        footprint: Mapping[str, Any] | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        claimed = self._claim(pseudonym, key, digest)
        if isinstance(claimed, Outcome):
            return claimed
        held = self.book.balances.get(f"citizen:{pseudonym}", 0)
        if not rules.debit_allowed(held, grams):
            raise rules.insufficient(held, grams, "g", f"retiring {grams} g takes them").error()
        entry = self._move("retire", f"citizen:{pseudonym}", f"retired:{pseudonym}", grams, at)
        result = {"retired_g": grams, "entry": entry, "footprint": dict(footprint or {}) or None}
        return self._done(pseudonym, key, digest, "retire", result)

    def give(
        self,
        pseudonym: str,
        to: str,
        amount: int,
        programme: str | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        if programme is not None and programme not in self.book.programmes:
            raise NotFoundError(f"no programme {programme!r}")
        claimed = self._claim(pseudonym, key, digest)
        if isinstance(claimed, Outcome):
            return claimed
        unit = "g" if programme is None else "pt"
        giver = f"citizen:{pseudonym}" if unit == "g" else f"points:{programme}:{pseudonym}"
        taker = f"citizen:{to}" if unit == "g" else f"points:{programme}:{to}"
        since = china_time.day_start(at)
        given = sum(
            a
            for k, s, _, a, when in self.book.transfers
            if k == "transfer" and s == giver and when >= since
        )
        refused = rules.gift_refused(amount, unit, given)
        held = self.book.balances.get(giver, 0)
        if refused is None and not rules.debit_allowed(held, amount):
            refused = rules.insufficient(held, amount, unit, f"a gift of {amount} {unit}")
        if refused is not None:
            raise refused.error()
        entry = self._move("transfer", giver, taker, amount, at)
        result = {"amount": amount, "unit": unit, "programme": programme, "entry": entry}
        return self._done(pseudonym, key, digest, "transfer", result)

    def reverse(
        self, entry: int, reason: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        if not 1 <= entry <= len(self.book.transfers):
            raise NotFoundError(f"no entry {entry} of a citizen's account")
        kind, source, sink, amount, _ = self.book.transfers[entry - 1]
        who = (sink if kind == "transfer" else source).split(":")[-1]
        claimed = self._claim(who, key, digest)
        if isinstance(claimed, Outcome):
            return claimed
        refused = rules.reversal_refused(entry, kind, entry in self.book.reversed)
        held = self.book.balances.get(sink, 0)
        if refused is None and not rules.debit_allowed(held, amount):
            asked = f"reversing entry {entry} takes back {amount}"
            refused = rules.insufficient(held, amount, "g", asked)
        if refused is not None:
            raise refused.error()
        mirror = self._move("reversal", sink, source, amount, at)
        self.book.reversed.add(entry)
        result = {"reversed": entry, "entries": [mirror], "reason": reason}
        return self._done(who, key, digest, "reverse", result)


@dataclass
class FakeApp:
    """What the use cases of the personal carbon accounts need of `bootstrap.App`, in memory."""

    book: Book = field(default_factory=Book)
    now: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    secret: bytes = b"\x01" * 32
    memo: dict[str, Any] = field(default_factory=dict)

    def clock(self) -> datetime:
        return self.now

    def key(self, purpose: str) -> tuple[int, bytes]:
        return 0, self.secret

    def keys(self, purpose: str) -> dict[int, bytes]:
        return {0: self.secret}

    def __post_init__(self) -> None:
        self._operations = FakeOperations(self.book)

    def rewards(self) -> FakeRewards:
        return FakeRewards(self.book)

    def operations(self) -> FakeOperations:
        return self._operations
