"""The common mechanism's statement (`domain.federation`): the registry's judgement is
settlement's own rule on digests, withdrawals stop blocking from where they are made, and the
wire format says what is wrong without repeating a value."""

from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puhui.adapters.methodology_files import load_catalogue, shipped_folder
from puhui.domain.errors import MethodologyError
from puhui.domain.factors import FactorTable
from puhui.domain.federation import (
    Claim,
    Custody,
    Event,
    FederationError,
    Issued,
    Op,
    Recognition,
    Refusal,
    Register,
    Send,
    SharedCatalogue,
    UnitsRefusal,
    Verdict,
    batch_document,
    canonical,
    certifiable,
    claim_of,
    claims_key,
    key_fingerprint,
    parse_events,
    parse_methodologies,
    parse_units,
    registered,
)
from puhui.domain.market import Block, take_range
from puhui.domain.methodology import Cap, Catalogue, Methodology
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


# Units between the nodes' registries ---------------------------------------------------------

ROOT = "ab" * 32
BATCH = Issued("BJ", ROOT, "cn-common@1.0.0", "51", "2026-10", 1, 10)


def _send(n: int, first: int, last: int, to: str) -> Send:
    return Send(n, "BJ", ROOT, first, last, to, "91110000MA01ABCDEX", "Beta")


def test_units_are_in_their_origin_s_registry_until_it_sends_them() -> None:
    custody = Custody()
    nodes = {"BJ", "SH", "GZ"}
    assert custody.send("BJ", _send(1, 1, 2, "SH"), nodes) is UnitsRefusal.UNKNOWN_BATCH
    assert custody.issue(BATCH)
    assert not custody.issue(BATCH)  # registered once
    assert custody.holds("BJ", ROOT) == {"BJ": 10}
    assert custody.send("BJ", _send(1, 3, 5, "SH"), nodes) is None
    assert custody.holds("BJ", ROOT) == {"BJ": 7, "SH": 3}
    # Only the registry holding a unit sends it on, to an enrolled node other than itself.
    assert custody.send("BJ", _send(2, 5, 6, "GZ"), nodes) is UnitsRefusal.NOT_HELD
    assert custody.send("GZ", _send(3, 3, 3, "BJ"), nodes) is UnitsRefusal.NOT_HELD
    assert custody.send("SH", _send(4, 3, 3, "TJ"), nodes) is UnitsRefusal.UNKNOWN_NODE
    assert custody.send("SH", _send(5, 3, 3, "SH"), nodes) is UnitsRefusal.SAME_NODE
    assert custody.send("BJ", _send(6, 10, 11, "SH"), nodes) is UnitsRefusal.NOT_HELD
    assert custody.holds("BJ", ROOT) == {"BJ": 7, "SH": 3}  # refusals move nothing
    assert custody.send("SH", _send(7, 4, 4, "BJ"), nodes) is None
    assert custody.blocks[("BJ", ROOT)] == [(1, 2, "BJ"), (3, 3, "SH"), (4, 4, "BJ"),
                                            (5, 5, "SH"), (6, 10, "BJ")]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BJ", "SH", "GZ"]),
            st.integers(1, 12),
            st.integers(0, 4),
            st.sampled_from(["BJ", "SH", "GZ", "TJ"]),
        ),
        max_size=30,
    )
)
def test_every_unit_is_in_exactly_one_registry_whatever_is_sent(
    moves: list[tuple[str, int, int, str]],
) -> None:
    """Replaying any sends, each unit is where the last accepted send of it put it."""
    custody = Custody()
    custody.issue(BATCH)
    where = dict.fromkeys(range(1, 11), "BJ")
    for n, (node, first, length, to) in enumerate(moves, 1):
        last = first + length
        why = custody.send(node, _send(n, first, last, to), {"BJ", "SH", "GZ"})
        held = last <= 10 and all(where[u] == node for u in range(first, last + 1))
        assert (why is None) == (held and to in {"BJ", "SH", "GZ"} and to != node)
        if why is None:
            where.update(dict.fromkeys(range(first, last + 1), to))
    placed = {u: at for a, b, at in custody.blocks[("BJ", ROOT)] for u in range(a, b + 1)}
    assert placed == where


def test_a_batch_s_units_read_back_as_they_were_written() -> None:
    units = [BATCH, _send(1, 2, 3, "SH")]
    document = batch_document("k" * 64, "BJ", 1, [], {}, units)
    assert parse_units("BJ", document["units"]) == units
    assert "units" not in batch_document("k" * 64, "BJ", 1, [], {})


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"op": "burn"}], r"units\[0\]\.op: issue or send"),
        ([{**BATCH._asdict(), "op": "issue", "phone": "1"}], "issue has the fields"),
        ([{**BATCH._asdict(), "op": "issue", "origin": "SH"}], "its own batches only"),
        ([{**BATCH._asdict(), "op": "issue", "first": 0}], r"units\[0\]\.first: a serial"),
        ([{**BATCH._asdict(), "op": "issue", "first": 2, "last": 1}], "ends after it starts"),
        ([{**BATCH._asdict(), "op": "issue", "region": "5"}], r"\.region: a code"),
        ([{**_send(1, 1, 1, "SH")._asdict(), "op": "send", "company": "SECRET"}], r"\.company"),
        ([{**_send(1, 1, 1, "SH")._asdict(), "op": "send", "to": "sh"}], r"\.to: 2 to 16"),
        ([{**_send(1, 1, 1, "SH")._asdict(), "op": "send"}] * 2, "a transfer appears twice"),
    ],
)
def test_malformed_units_are_refused_naming_the_field_not_the_value(
    items: list[dict], message: str
) -> None:
    with pytest.raises(FederationError, match=message) as refused:
        parse_units("BJ", items)
    assert "SECRET" not in str(refused.value)


def test_a_range_of_units_is_taken_from_a_holding_exactly() -> None:
    held = [Block(1, 1, 5), Block(2, 1, 3)]
    taken, left = take_range(held, 1, 2, 3)
    assert taken == [Block(1, 2, 3)]
    assert sorted(left, key=lambda b: (b.batch, b.first)) == [
        Block(1, 1, 1), Block(1, 4, 5), Block(2, 1, 3),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="every unit"):
        take_range(held, 2, 3, 4)


# The shared methodology catalogue -----------------------------------------------------------


def test_one_id_at_version_is_one_method_in_the_shared_catalogue() -> None:
    shared = SharedCatalogue()
    assert shared.register("BJ", "cn-common@1.0.0", "a" * 64) is Recognition.ADDED
    assert shared.register("SH", "cn-common@1.0.0", "a" * 64) is Recognition.RECOGNISED
    assert shared.register("GZ", "cn-common@1.0.0", "b" * 64) is Recognition.DIFFERS
    assert shared.versions["cn-common@1.0.0"] == ("a" * 64, "BJ")  # the first definition stays
    # A node adds a regional version of its own; the others recognise it as it is.
    assert shared.register("SZ", "sz-public-transit@1.0.1", "c" * 64) is Recognition.ADDED


def test_a_version_s_fingerprint_follows_what_it_computes_with_and_nothing_else() -> None:
    catalogue = load_catalogue()
    ref = "sz-public-transit@1.0.0"
    m = catalogue.get(ref)
    before = catalogue.fingerprint(ref)
    assert before == load_catalogue().fingerprint(ref)  # the same on every installation
    retitled = dataclasses.replace(m, title="another title", references=())
    assert _with(catalogue, retitled).fingerprint(ref) == before
    rule = m.scenes["metro"]
    capped = dataclasses.replace(rule, caps=(Cap("day", max_count=6),))
    recapped = dataclasses.replace(m, scenes={**m.scenes, "metro": capped})
    assert _with(catalogue, recapped).fingerprint(ref) != before
    # A factor its formulas use, with another value.
    used = next(f for f in catalogue.factors if f.key == rule.baseline.names[0])
    factors = FactorTable(
        dataclasses.replace(f, value=f.value + 1) if f is used else f for f in catalogue.factors
    )
    assert Catalogue(catalogue.methodologies, factors, catalogue.regions).fingerprint(ref) != before


def _with(catalogue: Catalogue, m: Methodology) -> Catalogue:
    others = [o for o in catalogue.methodologies if o.ref != m.ref]
    return Catalogue([*others, m], catalogue.factors, catalogue.regions)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"ref": "cn-common", "fingerprint": "a" * 64}], r"methodologies\[0\]\.ref: id@version"),
        ([{"ref": "x@1", "fingerprint": "SECRET"}], r"\.fingerprint: 64 lowercase hex"),
        ([{"ref": "x@1", "fingerprint": "a" * 64, "factors": []}], "ref and fingerprint"),
        ([{"ref": "x@1", "fingerprint": "a" * 64}] * 2, "appears twice"),
    ],
)
def test_malformed_methodology_versions_are_refused_naming_the_field(
    items: list[dict], message: str
) -> None:
    with pytest.raises(FederationError, match=message) as refused:
        parse_methodologies(items)
    assert "SECRET" not in str(refused.value)


def test_an_exchange_s_own_versions_load_with_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(MethodologyError, match="does not exist"):
        load_catalogue(extra=tmp_path / "missing")
    # A copy of a shipped version under its own id@version is a version of its own; the same
    # id@version twice is refused.
    shipped = (shipped_folder() / "sz-public-transit.toml").read_text(encoding="utf-8")
    (tmp_path / "again.toml").write_text(shipped, encoding="utf-8")
    with pytest.raises(MethodologyError, match="defined twice"):
        load_catalogue(extra=tmp_path)
    own = shipped.replace('"sz-public-transit"', '"sz-public-transit-b"')
    (tmp_path / "again.toml").write_text(own.replace('["440300"]', '["440100"]'), "utf-8")
    refs = {m.ref for m in load_catalogue(extra=tmp_path).methodologies}
    assert "sz-public-transit-b@1.0.0" in refs
