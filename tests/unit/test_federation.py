"""The common mechanism's statement (`domain.federation`): the registry's judgement is
settlement's own rule on digests, withdrawals stop blocking from where they are made, and the
wire format says what is wrong without repeating a value."""

from __future__ import annotations

import itertools
import time
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puhui.domain.federation import (
    Claim,
    Event,
    FederationError,
    Op,
    Refusal,
    Register,
    Verdict,
    batch_document,
    canonical,
    certifiable,
    claim_of,
    claims_key,
    key_fingerprint,
    parse_events,
    registered,
)
from puhui.domain.reasons import Reason, Status
from puhui.domain.settlement import Book, Candidate
from puhui.service.federation import SyncLoop

KEY = claims_key(b"s" * 32)
MINUTE = 60_000

_record = st.fixed_dictionaries(
    {
        "node": st.sampled_from(["BJ", "SH", "GZ"]),
        "citizen": st.sampled_from(["a", "b"]),
        "scene": st.sampled_from(["bus", "metro", "recycling"]),
        "ref": st.sampled_from([None, None, "r1", "r2"]),
        "start": st.integers(0, 120),
        "minutes": st.integers(1, 60),
    }
)


def _claim(i: int, r: dict) -> Claim:
    trip = r["scene"] != "recycling"
    start = r["start"] * MINUTE
    return claim_of(
        KEY,
        r["node"],
        "p",
        f"id{i}",
        r["scene"],
        r["ref"],
        r["citizen"],
        start,
        start + r["minutes"] * MINUTE if trip else None,
    )


@settings(max_examples=500, derandomize=True)
@given(st.lists(_record, max_size=30))
def test_the_registry_judges_claims_as_settlement_judges_their_records(
    records: list[dict],
) -> None:
    """Registered in receive order, every claim's verdict is its record's status in one
    installation, and a duplicate names the same earliest record."""
    book, register = Book(), Register()
    for i, r in enumerate(records):
        trip = r["scene"] != "recycling"
        start = r["start"] * MINUTE
        decision = book.decide(
            Candidate(
                seq=i,
                key=("p", f"id{i}"),
                digest="d",
                citizen=r["citizen"],
                scene=r["scene"],
                ref=r["ref"],
                start_ms=start,
                end_ms=start + r["minutes"] * MINUTE if trip else None,
                day=date(2026, 10, 1),
                methodology="m@1",
            )
        )
        if not registered(r["ref"], start, start if trip else None):
            assert decision.status is Status.CREDITED
            continue
        answer = register.register(r["node"], _claim(i, r))
        assert answer.position == len(register.by_id)
        expected = Verdict.FIRST if decision.status is Status.CREDITED else Verdict.DUPLICATE
        assert answer.verdict is expected
        if expected is Verdict.DUPLICATE:
            assert (
                answer.of_claim
                == _claim(decision.duplicate_of or 0, records[decision.duplicate_of or 0]).id
            )
            assert ";".join(answer.reasons) == decision.reason


def test_a_withdrawn_claim_blocks_nothing_registered_after_it() -> None:
    register = Register()
    bus = claim_of(KEY, "BJ", "amap", "t1", "bus", "tap-1", "a", 0, 20 * MINUTE)
    same = claim_of(KEY, "SH", "bank", "b1", "bus", "TAP-1".casefold(), "a", MINUTE, 21 * MINUTE)
    later = claim_of(KEY, "GZ", "wx", "w1", "bus", "tap-1", "a", 2 * MINUTE, 22 * MINUTE)
    assert register.register("BJ", bus).verdict is Verdict.FIRST
    # Registered while the first held: a duplicate, by both rules.
    answer = register.register("SH", same)
    assert answer.verdict is Verdict.DUPLICATE
    assert answer.reasons == (Reason.DUPLICATE_REF, Reason.DUPLICATE_OVERLAP)
    assert (answer.of_node, answer.of_claim) == ("BJ", bus.id)
    assert register.withdraw("BJ", bus.id) == 3
    assert register.withdraw("BJ", bus.id) is None
    # The duplicate is still a claim: it now blocks in the first's place.
    answer = register.register("GZ", later)
    assert (answer.verdict, answer.of_node) == (Verdict.DUPLICATE, "SH")
    register.withdraw("SH", same.id)
    register.withdraw("GZ", later.id)
    fresh = claim_of(KEY, "BJ", "amap", "t2", "bus", "tap-1", "a", 0, 20 * MINUTE)
    assert register.register("BJ", fresh).verdict is Verdict.FIRST


def test_claims_carry_digests_only_linkable_across_nodes_under_one_key() -> None:
    pseudonym = "f" * 64
    a = claim_of(KEY, "BJ", "amap", "t1", "bus", "tap-9", pseudonym, 0, MINUTE)
    b = claim_of(KEY, "SH", "bank", "t1", "bus", "tap-9", pseudonym, 0, MINUTE)
    assert (a.ref, a.citizen) == (b.ref, b.citizen)
    assert a.id != b.id
    other = claim_of(claims_key(b"t" * 32), "BJ", "amap", "t1", "bus", "tap-9", pseudonym, 0, 1)
    assert other.ref != a.ref
    assert key_fingerprint(KEY) != key_fingerprint(claims_key(b"t" * 32))
    text = canonical(batch_document("k" * 64, "BJ", 1, [Event(Op.CLAIM, a)], {}))
    for secret in (b"tap-9", pseudonym.encode(), b"amap", b"t1"):
        assert secret not in text
    # An event's claim has no citizen and no interval; a metro ride of another scene with the
    # same ref is another behaviour.
    paper = claim_of(KEY, "BJ", "amap", "e1", "recycling", "tap-9", pseudonym, 0, None)
    assert (paper.citizen, paper.start_ms, paper.end_ms) == (None, None, None)
    assert paper.ref != a.ref


def test_a_batch_reads_back_as_it_was_written() -> None:
    trip = claim_of(KEY, "BJ", "amap", "t1", "bus", None, "p", 5, 5 + MINUTE)
    event = claim_of(KEY, "BJ", "amap", "e1", "recycling", "r", "p", 7, None)
    events = [Event(Op.CLAIM, trip), Event(Op.CLAIM, event), Event(Op.WITHDRAW, trip)]
    document = batch_document("k" * 64, "BJ", 3, events, {"records": 2})
    parsed = parse_events(document["events"])
    assert [(e.op, e.claim.id) for e in parsed] == [(e.op, e.claim.id) for e in events]
    assert parsed[0].claim == trip
    assert parsed[1].claim == event


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("x", "events: a list expected"),
        ([1], r"events\[0\]: an object expected"),
        ([{"op": "claim", "id": "SECRET"}], r"events\[0\]\.id: 40 lowercase hex"),
        ([{"op": "merge", "id": "a" * 40}], r"events\[0\]\.op: claim, withdraw or certify"),
        ([{"op": "claim", "id": "a" * 40}], "a ref, a trip, or both"),
        ([{"op": "claim", "id": "a" * 40, "ref": "b" * 64, "phone": "1"}], "unknown fields"),
        ([{"op": "claim", "id": "a" * 40, "citizen": "c" * 64}], "citizen, start_ms and end_ms"),
        (
            [{"op": "claim", "id": "a" * 40, "citizen": "c" * 64, "start_ms": 5, "end_ms": 5}],
            "ends after it starts",
        ),
        (
            [{"op": "claim", "id": "a" * 40, "citizen": "c" * 64, "start_ms": -1, "end_ms": 5}],
            r"start_ms: an integer",
        ),
        ([{"op": "withdraw", "id": "a" * 40, "ref": "b" * 64}], "only op and id"),
        ([{"op": "claim", "id": "a" * 40, "ref": "b" * 64}] * 2, "appears twice"),
    ],
)
def test_a_malformed_batch_is_refused_naming_the_field_not_the_value(
    events: object, message: str
) -> None:
    with pytest.raises(FederationError, match=message) as refused:
        parse_events(events)
    assert "SECRET" not in str(refused.value)
    assert "phone" not in str(refused.value) or "unknown fields" in str(refused.value)


def test_many_claims_keep_one_global_order() -> None:
    register = Register()
    positions = [
        register.register(
            node, claim_of(KEY, node, "p", str(i), "bus", None, str(i), 0, 1)
        ).position
        for i, node in zip(range(9), itertools.cycle(["BJ", "SH", "GZ"]), strict=False)
    ]
    assert positions == list(range(1, 10))


def test_only_a_live_first_claim_of_the_node_itself_may_be_certified() -> None:
    register = Register()
    first = claim_of(KEY, "BJ", "amap", "e1", "recycling", "r-1", "p", 0, None)
    again = claim_of(KEY, "SH", "bank", "e1", "recycling", "r-1", "p", 0, None)
    register.register("BJ", first)
    register.register("SH", again)
    assert certifiable(register, "BJ", first.id) is None
    assert certifiable(register, "SH", again.id) is Refusal.NOT_FIRST
    assert certifiable(register, "SH", first.id) is Refusal.NOT_REGISTERED
    register.withdraw("BJ", first.id)
    assert certifiable(register, "BJ", first.id) is Refusal.NOT_REGISTERED
    # On the wire: a certification names the claim and the batch of units' root, nothing else.
    event = Event(Op.CERTIFY, Claim(first.id, None, None, None, None), "ab" * 32)
    items = batch_document("k" * 64, "BJ", 1, [event], {})["events"]
    assert items == [{"op": "certify", "id": first.id, "root": "ab" * 32}]
    assert parse_events(items) == [event]
    with pytest.raises(FederationError, match=r"events\[0\]\.root: 64 lowercase hex"):
        parse_events([{**items[0], "root": "x"}])


def test_the_background_sync_logs_a_failure_once_not_every_round() -> None:
    logged: list[str] = []
    outcomes = iter([RuntimeError("db down at 10.0.0.1")] * 3 + [None] * 100)

    class Loop(SyncLoop):
        def round(self) -> None:
            outcome = next(outcomes, None)
            if outcome is not None:
                raise outcome

    loop = Loop(None, interval_s=0.01, log=logged.append)  # type: ignore[arg-type]
    loop.start()
    deadline = time.monotonic() + 10
    while len(logged) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert logged[0] == "federation sync failed (RuntimeError)"
    assert logged[1].startswith("federation sync recovered after")
    assert len(logged) == 2
