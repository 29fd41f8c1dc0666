"""Held records (spec v1.1) as a state machine, on SQLite and PostgreSQL: a map app (`amap`) and
a ride-hailing app (`didi`) report Shenzhen metro rides of November 2026, which the evidence
policy `sz-metro` holds until the metro operator (`szmetro`) reports the same behaviour (the
same tap `ref`, or the citizen's trip overlapping by more than half); `szmetro` reports rides of
its own; any record is replayed; an operator releases or rejects held records; the windows time
out. A model of the rules says what every receipt must be, and after every step:

1. no behaviour is credited twice: no two credited rides of a citizen overlap by more than half
   or share a ref, a citizen's balance is the grams of their credited records, and each credited
   record is posted into the citizen's account once (a credit, or a hold and its release);
2. a rejected held record blocks nothing: a later record of its behaviour is never its
   duplicate, and is credited (or held) when nothing else claims the behaviour;
3. the ledger balances with its pending transfers: `ledger.verify` finds nothing, every unit's
   balances sum to zero, and each citizen's held account holds the grams of their held records;
4. a replay of a record returns its current receipt: `held` while it waits, the outcome after;
5. a held record ends once: a second decision, or a timeout after a decision, ends nothing.

Each example runs on a fresh database (an SQLite file, a new PostgreSQL database)."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain import evidence
from puhui.domain.review import Decision
from puhui.service import admin, ingest, ledger, queries
from puhui.service.pipeline import Pipeline
from puhui.service.review import decide_held, expire_held
from tests.builders import trip

CHINA = timezone(timedelta(hours=8))
# The rides happen on 2 and 3 November 2026 (China time), under the evidence policies; the
# exchange receives the first on 4 November and the clock moves on with every step. Its moments
# have microseconds, as a real clock's do (a window then ends at a moment with microseconds).
DAYS = (2, 3)
START = datetime(2026, 11, 4, 0, 0, 0, 123456, tzinfo=UTC)
CITIZENS = ("13800138001", "13800138002", "13800138003")
# Minutes after 08:00 and durations: rides starting 10 minutes apart are one behaviour,
# 15 minutes apart (exactly half of 30) or more are two.
OFFSETS = (0, 10, 15, 20, 45)
DURATIONS = (30, 20)
AUTHORITY = "szmetro"
WINDOW = timedelta(days=7)  # sz-metro's window_days
AWAITING = "awaiting_corroboration"
# Bounds that keep every fraud signal quiet, so that a record is held for the policy alone: a
# platform's records starting in one minute (burst: 10), a citizen's rides on one day
# (volume_outlier: 24).
MAX_IN_MINUTE = 8
MAX_IN_DAY = 20

# What the runs saw, over all examples of a test (printed at its end; run with -s).
SEEN: Counter[str] = Counter()


def _seen(what: str) -> None:
    SEEN[what] += 1
    event(what)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """One behaviour: two trips overlapping by more than half of the shorter (spec v1)."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return 2 * shared > min(a[1] - a[0], b[1] - b[0])


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Hold:
    """What the model knows of a record that was held."""

    until: datetime
    grams: int
    capped: bool
    ended: str = ""  # the outcome's reason once it ended
    decided_at: datetime | None = None


@dataclass
class Sent:
    """A record sent, and its receipt as the model expects it now."""

    platform: str
    body: dict[str, Any]
    ride: Ride
    span: tuple[int, int]
    ref: str | None  # as compared: trimmed, case folded
    received_at: datetime
    seq: int = 0
    subject_id: int = 0
    status: str = ""
    reason: str = ""
    grams: int = 0
    duplicate_of: int | None = None
    hold: Hold | None = None

    @property
    def citizen(self) -> str:
        return self.ride.citizen

    @property
    def key(self) -> tuple[str, str]:
        return self.platform, str(self.body["record_id"])

    @property
    def open(self) -> bool:
        return self.hold is not None and self.status == "held"

    def receipt(self) -> tuple[str, str, int]:
        return self.status, self.reason, self.grams


@dataclass
class Ride:
    """A ride as a platform reports it."""

    citizen: str
    day: int
    start_min: int  # minutes after 08:00
    minutes: int
    ref: str | None = None

    def span(self) -> tuple[int, int]:
        start = datetime(2026, 11, self.day, 8, tzinfo=CHINA) + timedelta(minutes=self.start_min)
        return _ms(start), _ms(start + timedelta(minutes=self.minutes))


def _ref_of(citizen: str, day: int, start_min: int) -> str:
    """The metro card's tap id of a ride."""
    return f"TAP-{citizen[-3:]}-{day}-{start_min:03d}"


rides = st.builds(
    Ride,
    citizen=st.sampled_from(CITIZENS),
    day=st.sampled_from(DAYS),
    start_min=st.sampled_from(OFFSETS),
    minutes=st.sampled_from(DURATIONS),
)


class HeldRecords(RuleBasedStateMachine):
    """One exchange, fresh for each example, and the model of what its receipts must be."""

    new_database: Callable[[Path], str]

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.now = START
        url = self.new_database(Path(self.folder.name))
        self.app: App = bootstrap(
            Settings(url, Path(self.folder.name) / "subject.key"), clock=lambda: self.now
        )
        # The policies this test is written against, whatever PUHUI_EVIDENCE says.
        self.app.__dict__["evidence"] = evidence.load(evidence.FOLDER / "evidence-1.toml")
        admin.init(self.app)
        for platform in ("amap", "didi", AUTHORITY):
            admin.add_platform(self.app, platform)
        self.pipeline = Pipeline(self.app)
        self.sent: list[Sent] = []
        self.by_seq: dict[int, Sent] = {}
        self.numbers = Counter[str]()
        self.in_minute = Counter[tuple[str, int]]()
        self.in_day = Counter[tuple[str, int]]()
        SEEN["examples"] += 1

    def teardown(self) -> None:
        self.pipeline.close()
        self.app.close()
        self.folder.cleanup()

    # --- sending records -------------------------------------------------------------------

    def _record(self, platform: str, ride: Ride) -> Sent:
        self.numbers[platform] += 1
        n = sum(self.numbers.values())
        start, end = ride.span()
        body = trip(
            f"{platform}-{self.numbers[platform]}",
            platform=platform,
            subject=ride.citizen,
            scene="metro",
            region="440300",
            start=datetime.fromtimestamp(start / 1000, CHINA).isoformat(),
            end=datetime.fromtimestamp(end / 1000, CHINA).isoformat(),
            # Every distance its own: no two rides repeat one another.
            distance_km=round(6 + n * 0.037, 3),
            ref=ride.ref,
        )
        ref = None if ride.ref is None else ride.ref.strip().casefold()
        return Sent(platform, body, ride, (start, end), ref, self.now)

    def _room_for(self, platform: str, rides: list[Ride]) -> bool:
        """Whether these rides stay under the fraud signals' thresholds (else nothing is sent)."""
        minutes = Counter((platform, r.span()[0] // 60_000) for r in rides)
        days = Counter((r.citizen, r.day) for r in rides)
        return all(self.in_minute[k] + n <= MAX_IN_MINUTE for k, n in minutes.items()) and all(
            self.in_day[k] + n <= MAX_IN_DAY for k, n in days.items()
        )

    def _send(self, platform: str, new: list[Sent], replays: tuple[Sent, ...] = ()) -> None:
        """Send new records (then replays) in one submission, settle them in the model, and
        check every receipt."""
        self.now += timedelta(hours=1)
        for s in new:
            s.received_at = self.now
        bodies = [s.body for s in new] + [r.body for r in replays]
        _, receipts = ingest.ingest_records(self.app, platform, bodies, pipeline=self.pipeline)
        got = receipts.to_pylist()
        assert len(got) == len(bodies)
        stored = self._stored()
        for s, receipt in zip(new, got[: len(new)], strict=True):
            row = stored[s.key]
            s.seq, s.subject_id = row["seq"], row["subject_id"]
            self._settle(s, row)
            assert (receipt["status"], receipt["reason"], receipt["reduction_g"]) == s.receipt(), (
                s.key
            )
            assert row["duplicate_of"] == s.duplicate_of, s.key
            if s.status in ("credited", "held") and not s.reason.endswith("capped"):
                assert s.grams > 0, s.key
            self.in_minute[(platform, s.span[0] // 60_000)] += 1
            self.in_day[(s.citizen, s.ride.day)] += 1
        for r, receipt in zip(replays, got[len(new) :], strict=True):
            self._check_replayed(r, receipt)

    def _settle(self, new: Sent, row: dict[str, Any]) -> None:
        """The rules: every record received that is not rejected claims its behaviour, and a
        later record of a claimed behaviour is a duplicate of its earliest claim; a duplicate
        claims too ("Duplicates hold claims, rejected records do not", docs/architecture.md),
        even one whose held record was rejected since. A first claim by another platform than
        the authority waits for the authority; the authority's duplicate of a held record
        waiting for it (as the earliest claim) corroborates it."""
        claims = [s for s in self.sent if s.status != "rejected"]
        by_ref = min(
            (s.seq for s in claims if new.ref is not None and s.ref == new.ref), default=None
        )
        by_overlap = min(
            (s.seq for s in claims if s.citizen == new.citizen and overlaps(s.span, new.span)),
            default=None,
        )
        self._check_rejected_blocks_nothing(new, claims, row)
        self.sent.append(new)
        self.by_seq[new.seq] = new
        if by_ref is not None or by_overlap is not None:
            new.status, new.grams = "duplicate", 0
            new.reason = ";".join(
                reason
                for reason, found in (("duplicate_ref", by_ref), ("duplicate_overlap", by_overlap))
                if found is not None
            )
            new.duplicate_of = min(s for s in (by_ref, by_overlap) if s is not None)
            first = self.by_seq[new.duplicate_of]
            _seen(f"{new.platform}'s duplicate ({new.reason}) of a {first.status} record")
            if new.platform == AUTHORITY and first.open:
                self._end(first, "corroborated", new.received_at)
            return
        # Not predicted: the grams (caps, `capped`); they are kept as the receipt gives them.
        capped = row["reason"].endswith("capped")
        new.grams = row["reduction_g"]
        if new.platform == AUTHORITY:
            new.status, new.reason = "credited", "capped" if capped else ""
            _seen("credited at once")
        else:
            new.status = "held"
            new.reason = AWAITING + (";capped" if capped else "")
            new.hold = Hold(new.received_at + WINDOW, new.grams, capped)
            _seen("held")
        if capped:
            _seen("capped")

    def _check_rejected_blocks_nothing(
        self, new: Sent, claims: list[Sent], row: dict[str, Any]
    ) -> None:
        """Invariant 2: a new record of the behaviour of a rejected held record is never its
        duplicate, and is credited or held when nothing else claims the behaviour (the model
        then checks its receipt exactly)."""
        rejected = [
            s
            for s in self.sent
            if s.hold is not None
            and s.status == "rejected"
            and (
                (new.ref is not None and s.ref == new.ref)
                or (s.citizen == new.citizen and overlaps(s.span, new.span))
            )
        ]
        if not rejected:
            return
        assert row["duplicate_of"] not in {s.seq for s in rejected}, (new.key, row)
        same = [
            s
            for s in claims
            if (new.ref is not None and s.ref == new.ref)
            or (s.citizen == new.citizen and overlaps(s.span, new.span))
        ]
        if not same:
            assert row["status"] == ("credited" if new.platform == AUTHORITY else "held"), row
            _seen("a rejected held record's behaviour reported again, claimed by nothing")
        elif all(s.status == "duplicate" for s in same):
            _seen("a rejected held record's behaviour reported again, claimed by duplicates only")
        else:
            _seen("a rejected held record's behaviour reported again, claimed by a live record")

    def _end(self, held: Sent, outcome: str, at: datetime) -> None:
        assert held.hold is not None
        assert held.open
        held.hold.ended, held.hold.decided_at = outcome, at
        if outcome in ("corroborated", "released"):
            held.status = "credited"
            held.reason = outcome + (";capped" if held.hold.capped else "")
        else:
            held.status, held.reason, held.grams = "rejected", outcome, 0
        _seen(outcome)

    def _check_replayed(self, s: Sent, receipt: dict[str, Any]) -> None:
        assert (receipt["status"], receipt["reason"], receipt["reduction_g"]) == s.receipt(), s.key
        assert receipt["settled_now"] is False
        stored = queries.receipt(self.app, *s.key)
        assert (stored.status, stored.reason, stored.reduction_g) == s.receipt()
        decided = None if s.hold is None else s.hold.decided_at
        assert stored.decided_at == decided, s.key
        if s.hold is None:
            _seen(f"replay of a {s.status} record never held")
        else:
            _seen(f"replay of a held record, now {s.status} ({s.hold.ended or 'waiting'})")

    @rule(ride=rides, with_ref=st.booleans())
    def amap_reports(self, ride: Ride, with_ref: bool) -> None:
        """A map app's citizen reports a metro ride (with the card's tap id, or without)."""
        if with_ref:
            ride = replace(ride, ref=_ref_of(ride.citizen, ride.day, ride.start_min))
        if self._room_for("amap", [ride]):
            self._send("amap", [self._record("amap", ride)])

    @rule(first=rides, second=rides)
    def amap_reports_two_and_a_replay(self, first: Ride, second: Ride) -> None:
        """Two rides in one submission, the first sent twice: the copy is a replay in the
        chunk, answered with the first's receipt (held, or a duplicate)."""
        if self._room_for("amap", [first, second]):
            a, b = self._record("amap", first), self._record("amap", second)
            self._send("amap", [a, b], replays=(a,))

    @rule(ride=rides, shift=st.sampled_from([0, 5, 20]), respelled=st.booleans())
    def szmetro_reports(self, ride: Ride, shift: int, respelled: bool) -> None:
        """The metro operator reports a ride by its gates: the tap id of the ride that started
        at its nominal time, the times `shift` minutes later (20: no overlap, the ref alone
        joins it to the app's record); the ref maybe in lower case, with spaces."""
        ref = _ref_of(ride.citizen, ride.day, ride.start_min)
        ride = replace(
            ride,
            ref=f" {ref.lower()} " if respelled else ref,
            start_min=ride.start_min + shift,
        )
        if self._room_for(AUTHORITY, [ride]):
            self._send(AUTHORITY, [self._record(AUTHORITY, ride)])

    @precondition(lambda self: any(s.open for s in self.sent))
    @rule(data=st.data(), shift=st.sampled_from([0, 0, 5, 20]), with_ref=st.booleans())
    def szmetro_reports_a_held_ride(self, data: st.DataObject, shift: int, with_ref: bool) -> None:
        """The metro operator reports the ride of a held record: corroborated when the held
        record is the earliest claim of the behaviour."""
        held = data.draw(st.sampled_from([s for s in self.sent if s.open]), "held")
        ride = replace(
            held.ride,
            start_min=held.ride.start_min + shift,
            ref=held.ride.ref if with_ref else None,
        )
        if self._room_for(AUTHORITY, [ride]):
            self._send(AUTHORITY, [self._record(AUTHORITY, ride)])

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def didi_reports_the_same_ride(self, data: st.DataObject) -> None:
        """Another app reports the behaviour of any record (a duplicate while it is claimed)."""
        of = data.draw(st.sampled_from(self.sent), "of")
        ride = replace(of.ride)
        if self._room_for("didi", [ride]):
            self._send("didi", [self._record("didi", ride)])

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """A platform sends a record again, unchanged: its current receipt, nothing new."""
        # Mostly a record that was held: ended (by each way it can end) or still waiting.
        ways: dict[str, list[Sent]] = {}
        for s in self.sent:
            if s.hold is not None:
                ways.setdefault(s.hold.ended, []).append(s)
        pools = [*ways.values(), self.sent]
        pool = data.draw(st.sampled_from(pools), "pool")
        s = data.draw(st.sampled_from(pool), "replayed")
        self.now += timedelta(hours=1)
        before = self._transfers()
        _, receipts = ingest.ingest_records(self.app, s.platform, [s.body], pipeline=self.pipeline)
        self._check_replayed(s, receipts.to_pylist()[0])
        assert self._transfers() == before, "a replay moves nothing"

    def _transfers(self) -> int:
        with self.app.engine.connect() as conn:
            return int(conn.execute(text("select count(*) from transfers")).scalar_one())

    def _decide(self, data: st.DataObject, decision: Decision) -> None:
        """An operator's decision on a record: one still held ends, any other (decided
        already, or never held) is left as it is."""
        # Mostly a record still held; now and then one held before, or any record.
        held = [s for s in self.sent if s.open]
        ever = [s for s in self.sent if s.hold is not None]
        pools = [held, held, ever, self.sent]
        pool = data.draw(st.sampled_from([p for p in pools if p]), "pool")
        s = data.draw(st.sampled_from(pool), "decided")
        self.now += timedelta(minutes=10)
        ended = decide_held(self.app, [s.seq], decision, "ops-li", "checked the gate logs")
        if s.open:
            assert ended == [s.seq]
            outcome = "released" if decision is Decision.RELEASE else "rejected_on_review"
            self._end(s, outcome, self.now)
        else:
            assert ended == []
            _seen(f"decision skipped: {s.hold.ended if s.hold else 'never held'}")

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def operator_releases(self, data: st.DataObject) -> None:
        """Credited (`released`), its pending grams posted to the citizen."""
        self._decide(data, Decision.RELEASE)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def operator_rejects(self, data: st.DataObject) -> None:
        """Rejected (`rejected_on_review`), its pending grams voided: it claims nothing."""
        self._decide(data, Decision.REJECT)

    @precondition(lambda self: any(s.open for s in self.sent))
    @rule(
        wait=st.sampled_from([timedelta(0), timedelta(days=1), timedelta(days=3)]),
        china=st.booleans(),
    )
    def windows_end(self, wait: timedelta, china: bool) -> None:
        """The policies' timeouts run: records still uncorroborated at the end of their window
        are rejected (`not_corroborated`). The moment is given in UTC or in China time (as
        `puhui review expire --at` gives it): the same instant."""
        self.now += wait
        self._expire(china)

    def _waiting(self) -> list[Sent]:
        """Held records whose window is not over yet."""
        return [s for s in self.sent if s.open and s.hold and s.hold.until > self.now]

    @precondition(lambda self: bool(self._waiting()))
    @rule(
        early=st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(hours=1)]),
        china=st.booleans(),
    )
    def windows_end_around_the_moment_the_first_ends(self, early: timedelta, china: bool) -> None:
        """The timeouts run exactly when the first window still open ends (its record ends
        then, with those received with it, no other), or a moment before (nothing ends)."""
        first = min(self._waiting(), key=lambda s: s.received_at)
        assert first.hold is not None
        self.now = max(self.now, first.hold.until - early)
        self._expire(china)
        assert (first.status == "rejected") == (self.now >= first.hold.until)

    def _expire(self, china: bool) -> None:
        due = sorted(
            s.seq for s in self.sent if s.open and s.hold is not None and s.hold.until <= self.now
        )
        ended = expire_held(self.app, self.now.astimezone(CHINA) if china else self.now)
        assert sorted(ended) == due, (self.now, china)
        for seq in due:
            self._end(self.by_seq[seq], "not_corroborated", self.now)
        if not due:
            _seen("timeouts ended nothing")

    # --- what holds after every step ---------------------------------------------------------

    def _stored(self) -> dict[tuple[str, str], dict[str, Any]]:
        with self.app.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select p.code, r.record_id, r.seq, r.subject_id, r.status, r.reason, "
                    "r.reduction_g, r.duplicate_of from records r "
                    "join platforms p on p.id = r.platform_id"
                )
            ).all()
        return {
            (code, rid): {
                "seq": int(seq),
                "subject_id": int(subject),
                "status": status,
                "reason": reason or "",
                "reduction_g": int(grams or 0),
                "duplicate_of": None if dup is None else int(dup),
            }
            for code, rid, seq, subject, status, reason, grams, dup in rows
        }

    @invariant()
    def every_record_is_as_the_model_says(self) -> None:
        SEEN["checks after a step"] += 1
        stored = self._stored()
        assert {k: (v["status"], v["reason"], v["reduction_g"]) for k, v in stored.items()} == {
            s.key: s.receipt() for s in self.sent
        }

    @invariant()
    def no_behaviour_is_credited_twice(self) -> None:
        """Invariant 1, read from the records, the ledger's balances and its transfers."""
        credited = [s for s in self.sent if s.status == "credited"]
        for i, a in enumerate(credited):
            for b in credited[i + 1 :]:
                assert not (a.ref is not None and a.ref == b.ref), (a.key, b.key)
                assert not (a.citizen == b.citizen and overlaps(a.span, b.span)), (a.key, b.key)
        with self.app.engine.connect() as conn:
            twice = conn.execute(
                text(
                    "select a.seq, b.seq from records a join records b on a.seq < b.seq "
                    "and a.subject_id = b.subject_id and a.status = 'credited' "
                    "and b.status = 'credited' and 2 * (min(a.end_ms, b.end_ms) - "
                    "max(a.start_ms, b.start_ms)) > min(a.end_ms - a.start_ms, "
                    "b.end_ms - b.start_ms)"
                    if conn.dialect.name == "sqlite"
                    else "select a.seq, b.seq from records a join records b on a.seq < b.seq "
                    "and a.subject_id = b.subject_id and a.status = 'credited' "
                    "and b.status = 'credited' and 2 * (least(a.end_ms, b.end_ms) - "
                    "greatest(a.start_ms, b.start_ms)) > least(a.end_ms - a.start_ms, "
                    "b.end_ms - b.start_ms)"
                )
            ).all()
            assert twice == []
            balances = self._balances(conn, "citizen")
            into_citizens = conn.execute(
                text(
                    "select coalesce(x.record_seq, h.record_seq), count(*) from transfers x "
                    "join accounts a on a.id = x.credit_account_id and a.kind = 'citizen' "
                    "left join transfers h on h.id = x.reverses and h.kind = 'hold' "
                    "where x.kind in ('credit', 'release') "
                    "group by coalesce(x.record_seq, h.record_seq)"
                )
            ).all()
        expected: Counter[int] = Counter()
        for s in credited:
            expected[s.subject_id] += s.grams
        assert {k: v for k, v in balances.items() if v} == {k: v for k, v in expected.items() if v}
        assert dict(into_citizens) == {s.seq: 1 for s in credited if s.grams > 0}

    @invariant()
    def the_ledger_balances_with_pending_transfers(self) -> None:
        """Invariant 3: the ledger verifies, every unit sums to zero, held grams are pending."""
        assert ledger.verify(self.app) == []
        with self.app.engine.connect() as conn:
            units = conn.execute(
                text(
                    "select a.unit, sum(b.balance_g) from balances b "
                    "join accounts a on a.id = b.account_id group by a.unit"
                )
            ).all()
            assert all(int(total) == 0 for _, total in units), units
            held = self._balances(conn, "held")
            settled = conn.execute(
                text(
                    "select h.record_seq, h.amount, x.kind, x.amount from transfers h "
                    "left join transfers x on x.reverses = h.id where h.kind = 'hold'"
                )
            ).all()
        pending: Counter[int] = Counter()
        for s in self.sent:
            if s.status == "held":
                pending[s.subject_id] += s.grams
        assert {k: v for k, v in held.items() if v} == {k: v for k, v in pending.items() if v}
        # Each hold with grams: pending while its record is held, then released (credited) or
        # voided (rejected) once, in full.
        ways = {"held": [], "credited": ["release"], "rejected": ["void"]}
        expected = {
            s.seq: (s.hold.grams, ways[s.status])
            for s in self.sent
            if s.hold is not None and s.hold.grams > 0
        }
        got: dict[int, tuple[int, list[str]]] = {}
        for seq, amount, kind, moved in settled:
            got.setdefault(int(seq), (int(amount), []))
            if kind is not None:
                assert moved == amount, (seq, kind)
                got[int(seq)][1].append(kind)
        assert got == expected

    @staticmethod
    def _balances(conn: Any, kind: str) -> dict[int, int]:
        """Balances of the accounts of a kind, by citizen (subject id)."""
        owner = "a.subject_id" if kind == "citizen" else "a.owner_id"
        rows = conn.execute(
            text(
                f"select {owner}, b.balance_g from accounts a "
                "join balances b on b.account_id = a.id where a.kind = :kind"
            ),
            {"kind": kind},
        ).all()
        return {int(o): int(g) for o, g in rows}


def test_held_records_credit_once_block_nothing_when_rejected_and_balance_at_every_step(
    new_database: Callable[[Path], str],
) -> None:
    SEEN.clear()
    machine = type("Machine", (HeldRecords,), {"new_database": staticmethod(new_database)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    print("\nheld records, events over all examples:")
    for what, n in sorted(SEEN.items()):
        print(f"  {n:5d}  {what}")
