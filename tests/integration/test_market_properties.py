"""Stateful property test of the carbon market over the real service on SQLite: any sequence
of certifications (of three months and two region prefixes, with citizens joining and leaving
the `certify` scope, grants expiring, grams spent or reversed on their accounts and new credits
arriving between them), sales, transfers between three companies, partial retirements,
reversals of certified credits (buffers running short included) and requests sent again keeps,
after every step:

- every gram credited in exactly one place and every account what its transfers say (the
  ledger's balance checks), and each market check of `ledger verify` (pools, certified credits,
  units backed by 1 000 000 g each, serial numbers partitioned, holdings replayed from the
  moves, moves the market allows, Merkle roots);
- the pools, buffers, citizens' balances and the holder of every unit number exactly what a
  plain model of the rules (written here, not `domain.market`) says, and every answer too.

Each sequence starts from a copy of one database, made once: migrated, a platform, eight
citizens with three months of credits (some taking part), three companies, August certified
into units without a buffer and September into units a quarter withheld, three of them sold.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import text

from puhui.adapters.sql import market_audit
from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.accounts import Outcome
from puhui.domain.consent import Scope
from puhui.domain.errors import RefusedError
from puhui.service import admin, consent, ingest, market, queries, wallet
from tests.builders import event

SEQUENCES = int(os.environ.get("PUHUI_MARKET_SEQUENCES", "1000"))
UNIT = 1_000_000
METHODOLOGY = "cn-common@1.0.0"
MONTHS = ("2026-08", "2026-09", "2026-10")
CITIZENS = 8
DAYS = 20  # credits a citizen has in each month, on its first days
COMPANIES = ("91350100M000100Y43", "91110000MA01ABCDEX", "91510100MA6C00001Q")
START = datetime(2026, 11, 5, tzinfo=UTC)
# The market's checks, and the ledger's own that every gram is in one place.
CHECKS = [
    *market_audit.QUERIES,
    "batch_root_mismatch",
    "balance_mismatch",
    "ledger_total",
    "balance_negative",
]

Holder = tuple[str, int | None]  # exchange, buffer, cancelled; company or retired (its index)
EXCHANGE: Holder = ("exchange", None)
BUFFER: Holder = ("buffer", None)


def phone(citizen: int) -> str:
    return f"1390000{citizen:04d}"


def kilos(citizen: int, month: int, day: int) -> int:
    """70 to 100 kg of paper: about 15 400 g to the day's cap of 20 000 g."""
    return 70 + (citizen * 11 + month * 7 + day * 13) % 31


@dataclass(frozen=True)
class Record:
    """A credit as the model knows it."""

    seq: int
    citizen: int
    month: str
    grams: int
    entry: int


@dataclass
class Grant:
    citizen: int
    id: str
    start: datetime
    expires: datetime
    revoked: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.expires and (self.revoked is None or self.revoked > now)


@dataclass
class Batch:
    id: int
    vintage: str
    first: int
    last: int
    buffer_g: int


@dataclass
class Model:
    """The market as the rules say it must be; each operation returns what its answer must
    say, or the code it must be refused with."""

    records: list[Record]
    balances: dict[int, int]
    grants: list[Grant] = field(default_factory=list)
    reversed_on_account: set[int] = field(default_factory=set)
    pools: dict[str, dict[int, int]] = field(default_factory=dict)  # region: {seq: grams left}
    pooled: dict[int, str] = field(default_factory=dict)  # certified: seq → region
    pieces: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # seq: (batch, g)
    batches: list[Batch] = field(default_factory=list)
    holders: dict[int, Holder] = field(default_factory=dict)  # unit number: its holder
    reversed: set[int] = field(default_factory=set)

    def copy(self) -> Model:
        return Model(
            list(self.records),
            dict(self.balances),
            [replace(g) for g in self.grants],
            set(self.reversed_on_account),
            {region: dict(pool) for region, pool in self.pools.items()},
            dict(self.pooled),
            {seq: list(p) for seq, p in self.pieces.items()},
            [replace(b) for b in self.batches],
            dict(self.holders),
            set(self.reversed),
        )

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.balances[record.citizen] = self.balances.get(record.citizen, 0) + record.grams

    def held(self, holder: Holder) -> list[int]:
        return sorted(u for u, h in self.holders.items() if h == holder)

    def serials(self, units: list[int]) -> list[str]:
        """Runs of consecutive numbers of one batch, as serial numbers."""
        runs: list[list[int]] = []
        for u in sorted(units):
            if runs and runs[-1][-1] + 1 == u and self._batch(u) is self._batch(runs[-1][0]):
                runs[-1].append(u)
            else:
                runs.append([u])
        return [
            f"CN-PH-BJ-CN-COMMON.V1.0.0-{self._batch(r[0]).vintage}-{r[0]}-{r[-1]}" for r in runs
        ]

    def _batch(self, unit: int) -> Batch:
        return next(b for b in self.batches if b.first <= unit <= b.last)

    def _move(self, source: Holder, to: Holder, units: int) -> list[str] | str:
        """The lowest `units` numbers of a holding move; their serials."""
        held = self.held(source)
        if units > len(held):
            return "insufficient_units"
        for u in held[:units]:
            self.holders[u] = to
        return self.serials(held[:units])

    def certify(self, month: str, region: str, bp: int, now: datetime) -> dict[str, Any]:
        # Each taking part gives the oldest whole credits of the month their account still
        # holds, while they fit; a credit is certified once.
        left = dict(self.balances)
        stopped: set[int] = set()
        certified = []
        active = {g.citizen for g in self.grants if g.active(now)}
        for r in sorted(self.records, key=lambda r: r.seq):
            if (
                r.month != month
                or r.seq in self.pooled
                or r.seq in self.reversed_on_account
                or r.citizen not in active
                or r.citizen in stopped
            ):
                continue
            if r.grams <= left[r.citizen]:
                left[r.citizen] -= r.grams
                certified.append(r)
            else:
                stopped.add(r.citizen)
        pool = self.pools.setdefault(region, {})
        for r in certified:
            self.balances[r.citizen] -= r.grams
            self.pooled[r.seq] = region
            pool[r.seq] = r.grams
        expected: dict[str, Any] = {
            "credits": len(certified),
            "citizens": len({r.citizen for r in certified}),
            "certified_g": sum(r.grams for r in certified),
            "batch": None,
        }
        # The pool's whole units are a batch: its oldest grams, the buffer rounded up.
        units = sum(pool.values()) // UNIT
        if units:
            buffer = min(units, (units * bp + 9_999) // 10_000)
            first = 1 + max((b.last for b in self.batches), default=0)
            batch = Batch(len(self.batches) + 1, month, first, first + units - 1, buffer * UNIT)
            self.batches.append(batch)
            need, leaves = units * UNIT, 0
            for seq in sorted(pool):
                part = min(pool[seq], need)
                if part > 0:
                    self.pieces.setdefault(seq, []).append((batch.id, part))
                    pool[seq] -= part
                    need -= part
                    leaves += 1
            for u in range(batch.first, batch.last + 1):
                self.holders[u] = EXCHANGE if u <= batch.last - buffer else BUFFER
            expected["batch"] = {
                "serial": self.serials(list(range(batch.first, batch.last + 1)))[0],
                "units": units,
                "buffer_units": buffer,
                "leaves": leaves,
            }
        expected["pool_g"] = sum(pool.values())
        return expected

    def sell(self, company: int, units: int) -> list[str] | str:
        return self._move(EXCHANGE, ("company", company), units)

    def transfer(self, company: int, to: int, units: int) -> list[str] | str:
        if company == to:
            return "same_company"
        return self._move(("company", company), ("company", to), units)

    def retire(self, company: int, units: int) -> list[str] | str:
        return self._move(("company", company), ("retired", company), units)

    def reverse(self, r: Record) -> list[dict[str, Any]] | str:
        """A certified credit found fraudulent: back from the pool, or from each batch's
        buffer as far as it holds, the buffer units no longer backed cancelled."""
        if r.seq not in self.pooled:
            return "not_certified"
        if r.seq in self.reversed:
            return "already_reversed"
        self.reversed.add(r.seq)
        draws: list[dict[str, Any]] = []
        pool = self.pools[self.pooled[r.seq]]
        if pool[r.seq] > 0:
            draws.append({"batch": None, "grams": pool[r.seq], "drawn_g": pool[r.seq]})
            pool[r.seq] = 0
        for batch_id, grams in sorted(self.pieces.get(r.seq, [])):
            b = self.batches[batch_id - 1]
            drawn = min(b.buffer_g, grams)
            b.buffer_g -= drawn
            backing = [u for u in self.held(BUFFER) if b.first <= u <= b.last]
            cancel = max(0, len(backing) - b.buffer_g // UNIT)
            for u in backing[len(backing) - cancel :]:
                self.holders[u] = ("cancelled", None)
            draws.append(
                {
                    "batch": self.serials(list(range(b.first, b.last + 1)))[0],
                    "grams": grams,
                    "drawn_g": drawn,
                    "shortfall_g": grams - drawn,
                    "units_cancelled": cancel,
                }
            )
        return draws

    def reverse_on_account(self, r: Record) -> str | None:
        """A credit reversed on the citizen's account: refused once certified."""
        if r.seq in self.reversed_on_account:
            return "already_reversed"
        if r.seq in self.pooled:
            return "certified"
        if self.balances[r.citizen] < r.grams:
            return "insufficient_balance"
        self.reversed_on_account.add(r.seq)
        self.balances[r.citizen] -= r.grams
        return None


def answer(operation: Callable[[], Outcome]) -> tuple[Outcome | None, str | None]:
    """Run an operation: its answer, or the code it was refused with."""
    try:
        return operation(), None
    except RefusedError as refused:
        return None, refused.code


def read_records(app: App, pseudonyms: list[str], record_id: str | None = None) -> list[Record]:
    """Credited records with grams, and their credit entries, oldest first."""
    citizen = {p: c for c, p in enumerate(pseudonyms)}
    with app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "select r.seq, s.pseudonym, r.record_id, r.reduction_g, x.id from records r "
                "join subjects s on s.id = r.subject_id join transfers x "
                "on x.record_seq = r.seq and x.kind = 'credit' "
                "where r.status = 'credited' and r.reduction_g > 0 "
                "and (:r is null or r.record_id = :r) order by r.seq"
            ),
            {"r": record_id},
        ).all()
    return [
        Record(int(seq), citizen[p], rid.split("-", 1)[1][:7], int(g), int(entry))
        for seq, p, rid, g, entry in rows
    ]


class World:
    """The database every sequence starts from, and what the model knows of it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.template = tmp / "template.db"
        self.key_file = tmp / "subject.key"
        self.examples = itertools.count()
        app = bootstrap(Settings(f"sqlite:///{self.template}", self.key_file), lambda: START)
        admin.init(app)
        admin.add_platform(app, "amap")
        records = [
            event(
                f"c{c}-{month}-{day}",
                subject=phone(c),
                quantity=str(kilos(c, m, day)),
                start=f"{month}-{day:02d}T10:00:00+08:00",
            )
            for m, month in enumerate(MONTHS)
            for day in range(1, DAYS + 1)
            for c in range(CITIZENS)
        ]
        ingest.ingest_records(app, "amap", records)
        self.pseudonyms = [queries.pseudonym_of(app, phone(c)) for c in range(CITIZENS)]
        self.model = Model([], dict.fromkeys(range(CITIZENS), 0))
        for r in read_records(app, self.pseudonyms):
            self.model.add(r)
        # Every citizen takes part in August's and September's certifications (for 30, 90 or
        # 365 days); citizens 6 and 7 then leave. August's units are issued without a buffer,
        # September's with a quarter of them withheld (rounded up); the first company buys two
        # units, the second one.
        for c, days in enumerate((30, 30, 90, 90, 365, 365, 30, 90)):
            g = consent.grant(app, self.pseudonyms[c], "amap", frozenset({Scope.CERTIFY}), days)
            self.model.grants.append(Grant(c, g.id, g.granted_at, g.expires_at))
        self.companies = [
            market.add_company(app, uscc, f"Company {uscc[-3:]}") for uscc in COMPANIES
        ]
        for n, (month, bp) in enumerate(((MONTHS[0], 0), (MONTHS[1], 2_500))):
            done = market.certify(app, month, METHODOLOGY, "51", f"c-{n}", "ops", buffer_bp=bp)
            assert subset(done.result, self.model.certify(month, "51", bp, START))
        assert len(self.model.batches) == 2
        assert self.model.held(BUFFER)
        for company, units in ((0, 2), (1, 1)):
            sold = market.sell(app, COMPANIES[company], units, "68", f"s-{company}", "ops")
            assert sold.result["serials"] == self.model.sell(company, units)
        for g in self.model.grants[6:]:
            consent.revoke(app, self.pseudonyms[g.citizen], g.id)
            g.revoked = START
        self.catalogue = app.catalogue
        app.close()
        assert not Path(f"{self.template}-wal").exists()

    def copy(self) -> Path:
        path = self.tmp / f"example-{next(self.examples)}.db"
        shutil.copy(self.template, path)
        return path


def subset(result: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Whether an answer says what is expected (and perhaps more: a batch's root)."""
    got = {k: result[k] for k in expected}
    if isinstance(got.get("batch"), dict):
        got["batch"] = {k: got["batch"][k] for k in expected["batch"]}
    return got == expected


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("market-properties"))


COMPANY = st.integers(0, len(COMPANIES) - 1)
CITIZEN = st.integers(0, CITIZENS - 1)
PICK = st.integers(0, 10**6)


def test_any_sequence_keeps_the_market_sound(world: World) -> None:
    class Market(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.path = world.copy()
            self.now = START + timedelta(days=1)
            self.app = bootstrap(Settings(f"sqlite:///{self.path}", world.key_file), self.clock)
            self.app.catalogue = world.catalogue  # the shipped one, loaded once
            self.model = world.model.copy()
            self.numbers = itertools.count()
            self.arrived = 0
            self.lot = 0
            # Answers given: the request again, another request under its key, the answer.
            self.done: list[tuple[Callable[[], Outcome], Callable[[], Outcome], Outcome]] = []

        def clock(self) -> datetime:
            return self.now

        def key(self) -> str:
            return f"k-{next(self.numbers)}"

        def teardown(self) -> None:
            self.app.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

        def record(self, pick: int, certified: bool = False) -> Record:
            """A credit of the sequence; a certified one when asked and there is one."""
            chosen = self.model.records
            if certified and self.model.pooled:
                chosen = [r for r in chosen if r.seq in self.model.pooled]
            return chosen[pick % len(chosen)]

        def moved(
            self,
            operation: Callable[..., Outcome],
            expected: list[str] | str,
            args: tuple[Any, ...],
            changed: tuple[Any, ...],
        ) -> None:
            """A move of units: its serials as the model says, or its refusal; kept to be sent
            again with its key, as it was and changed."""
            key = self.key()
            done, refused = answer(partial(operation, self.app, *args, key, "actor"))
            if isinstance(expected, str):
                assert refused == expected
                return
            assert refused is None, refused
            assert done is not None
            assert done.result["serials"] == expected
            self.done.append(
                (
                    partial(operation, self.app, *args, key, "actor"),
                    partial(operation, self.app, *changed, key, "actor"),
                    done,
                )
            )

        @initialize(lot=st.integers(0, 4))
        def draw_lot(self, lot: int) -> None:
            """An ingest costs about 0.1 s: new credits arrive in one sequence of five (a
            draw Hypothesis does not favour)."""
            self.lot = lot

        # --- the citizens ---------------------------------------------------------------------

        @rule(
            citizen=CITIZEN,
            what=st.sampled_from(["join 30", "join 90", "leave", "wait"]),
            days=st.integers(1, 40),
        )
        def consent(self, citizen: int, what: str, days: int) -> None:
            """A citizen joins the certify scope or leaves it; or time passes (grants expire)."""
            if what == "wait":
                self.now += timedelta(days=days)
            elif what == "leave":
                for g in self.model.grants:
                    if g.citizen == citizen and g.revoked is None:
                        consent.revoke(self.app, world.pseudonyms[citizen], g.id)
                        g.revoked = self.now
            else:
                given = consent.grant(
                    self.app,
                    world.pseudonyms[citizen],
                    "amap",
                    frozenset({Scope.CERTIFY}),
                    int(what.split()[1]),
                )
                self.model.grants.append(
                    Grant(citizen, given.id, given.granted_at, given.expires_at)
                )

        @rule(citizen=CITIZEN, share=st.integers(1, 100), pick=PICK, spend=st.booleans())
        def account(self, citizen: int, share: int, pick: int, spend: bool) -> None:
            """A citizen retires grams of their own (those are never certified); or a credit is
            reversed on its citizen's account, which is refused once it is certified."""
            if spend:
                grams = self.model.balances[citizen] * share // 100
                if grams > 0:
                    wallet.retire(self.app, world.pseudonyms[citizen], grams, self.key(), "c")
                    self.model.balances[citizen] -= grams
                return
            r = self.record(pick)
            _, refused = answer(partial(wallet.reverse, self.app, r.entry, self.key(), "ops", "x"))
            assert refused == self.model.reverse_on_account(r)

        @precondition(lambda self: self.lot == 3 and self.arrived < 1)
        @rule(
            citizen=CITIZEN,
            month=st.sampled_from(MONTHS),
            day=st.integers(DAYS + 1, 28),
            kg=st.integers(10, 100),
        )
        def arrive(self, citizen: int, month: str, day: int, kg: int) -> None:
            """A new credit between certifications."""
            self.arrived += 1
            record_id = f"c{citizen}-{month}-{day}"
            made = event(
                record_id,
                subject=phone(citizen),
                quantity=str(kg),
                start=f"{month}-{day:02d}T10:00:00+08:00",
            )
            ingest.ingest_records(self.app, "amap", [made])
            for r in read_records(self.app, world.pseudonyms, record_id):
                self.model.add(r)

        # --- the exchange and the companies ---------------------------------------------------

        @rule(
            month=st.sampled_from(MONTHS),
            region=st.sampled_from(["51", "5101"]),
            bp=st.sampled_from([0, 500, 2_500]),
        )
        def certify(self, month: str, region: str, bp: int) -> None:
            key = self.key()
            again = partial(market.certify, self.app, month, METHODOLOGY, region, key, "ops")
            done = again(buffer_bp=bp)
            assert subset(done.result, self.model.certify(month, region, bp, self.now))
            self.done.append(
                (partial(again, buffer_bp=bp), partial(again, buffer_bp=(bp + 1) % 10_000), done)
            )

        @rule(company=COMPANY, units=st.integers(1, 2))
        def sell(self, company: int, units: int) -> None:
            expected = self.model.sell(company, units)
            args = (COMPANIES[company], units)
            self.moved(market.sell, expected, (*args, "68"), (*args, "68.01"))

        @rule(company=COMPANY, to=COMPANY, units=st.integers(1, 2))
        def transfer(self, company: int, to: int, units: int) -> None:
            expected = self.model.transfer(company, to, units)
            args = (COMPANIES[company], COMPANIES[to])
            self.moved(market.transfer, expected, (*args, units), (*args, units + 1))

        @rule(company=COMPANY, units=st.integers(1, 2))
        def retire(self, company: int, units: int) -> None:
            expected = self.model.retire(company, units)
            args = (COMPANIES[company], units, "A")
            self.moved(market.retire, expected, (*args, "report"), (*args, "another"))

        @rule(pick=PICK, certified=st.booleans())
        def reverse(self, pick: int, certified: bool) -> None:
            r = self.record(pick, certified)
            key = self.key()
            undo = partial(market.reverse_credit, self.app, r.entry)
            done, refused = answer(partial(undo, "fraud", key, "ops"))
            expected = self.model.reverse(r)
            if isinstance(expected, str):
                assert refused == expected
                return
            assert done is not None, refused
            assert done.result["draws"] == expected
            self.done.append(
                (partial(undo, "fraud", key, "ops"), partial(undo, "x", key, "ops"), done)
            )

        @precondition(lambda self: self.done)
        @rule(pick=PICK, changed=st.booleans())
        def send_again(self, pick: int, changed: bool) -> None:
            """The same request again is answered as the first time and changes nothing;
            another request under the same key is refused."""
            same, other, first = self.done[pick % len(self.done)]
            if changed:
                assert answer(other)[1] == "idempotency_conflict"
                return
            again = same()
            assert again.replayed
            assert (again.operation, again.result) == (first.operation, first.result)

        # --- after every step -----------------------------------------------------------------

        @invariant()
        def sound_and_as_the_model_says(self) -> None:
            broken = {k: v for k, v in self.app.audit().breaking(CHECKS).items() if v}
            assert broken == {}
            m = self.model
            company = {cid: i for i, cid in enumerate(world.companies)}
            citizen = {p: c for c, p in enumerate(world.pseudonyms)}
            with self.app.engine.connect() as conn:
                blocks = conn.execute(
                    text("select first, last, holder, company_id from unit_blocks")
                ).all()
                balances = conn.execute(
                    text(
                        "select s.pseudonym, coalesce(b.balance_g, 0) from accounts a "
                        "join subjects s on s.id = a.subject_id "
                        "left join balances b on b.account_id = a.id where a.kind = 'citizen'"
                    )
                ).all()
                pools = conn.execute(
                    text(
                        "select a.code, coalesce(b.balance_g, 0) from accounts a left join "
                        "balances b on b.account_id = a.id where a.kind = 'pool'"
                    )
                ).all()
                buffers = conn.execute(
                    text(
                        "select u.first_serial, u.last_serial, coalesce(b.balance_g, 0) "
                        "from unit_batches u left join balances b "
                        "on b.account_id = u.buffer_account_id order by u.id"
                    )
                ).all()
            holders = {
                u: (str(h), None if c is None else company[int(c)])
                for first, last, h, c in blocks
                for u in range(int(first), int(last) + 1)
            }
            assert holders == m.holders
            assert {citizen[str(p)]: int(g) for p, g in balances} == m.balances
            assert {str(code): int(g) for code, g in pools} == {
                f"pool:{METHODOLOGY}:{region}": sum(p.values()) for region, p in m.pools.items()
            }
            assert [(int(a), int(b), int(g)) for a, b, g in buffers] == [
                (b.first, b.last, b.buffer_g) for b in m.batches
            ]

    Market.TestCase.settings = settings(
        max_examples=SEQUENCES,
        stateful_step_count=6,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    Market.TestCase().runTest()
