"""The common mechanism in one process: a registry and three exchanges' nodes, each on a database
of its own, the nodes sharing one subject key, on SQLite and PostgreSQL.

The registry is reached through a transport that calls it in-process, and that can lose
requests or answers (`Flaky`). Every scenario ends with each node's ledger verified.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from puhui.adapters.keystore import PURPOSES
from puhui.adapters.methodology_files import load_catalogue, shipped_folder
from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.consent import Scope
from puhui.domain.errors import AuthenticationError, InputError, RefusedError
from puhui.domain.federation import (
    Claim,
    Event,
    FederationError,
    Op,
    Send,
    batch_document,
    canonical,
)
from puhui.domain.review import Decision
from puhui.domain.settlement import overlaps
from puhui.entrypoints.api import create_app
from puhui.entrypoints.api.federation import create_registry_app
from puhui.entrypoints.dashboard import COOKIES
from puhui.service import (
    admin,
    consent,
    federation,
    ingest,
    ledger,
    market,
    oversight,
    queries,
    registry,
    review,
)
from tests.builders import event, trip
from tests.federation import final_receipts, one_node

NOW = datetime(2026, 11, 1, tzinfo=UTC)
NODES = {"BJ": ["amap", "bjtaxi"], "SH": ["bank", "shmetro"], "GZ": ["wechat"]}
URL = "http://registry.test"
CHINA = timezone(timedelta(hours=8))


class InProcess:
    """A transport to a registry in this process; `lose_answer` / `down` simulate faults."""

    def __init__(self, registry: App) -> None:
        self.registry = registry
        self.down = False
        self.lose_answers = 0
        self.posts = 0

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        assert url in (URL + federation.PATH, URL + federation.INBOX_PATH)
        batch = url == URL + federation.PATH
        self.posts += batch
        if self.down:
            raise federation.Unreachable("the registry is unreachable (test)")
        try:
            answer, signature = (federation.receive if batch else federation.inbox)(
                self.registry,
                headers[federation.HEADER_NODE],
                body,
                headers[federation.HEADER_SIGNATURE],
            )
        except AuthenticationError as error:
            return 401, json.dumps({"detail": str(error)}).encode(), ""
        except InputError as error:
            return 422, json.dumps({"detail": str(error)}).encode(), ""
        except RefusedError as error:
            return 409, json.dumps({"detail": f"{error.code}: {error}"}).encode(), ""
        if self.lose_answers and batch:
            # Registered, and the answer lost on the way back.
            self.lose_answers -= 1
            raise federation.Unreachable("the answer was lost (test)")
        return 200, answer, signature


@dataclass
class Federation:
    """A registry and its nodes; `sent` keeps every record sent, in order, with its node."""

    registry: App
    nodes: dict[str, App]
    transports: dict[str, InProcess]
    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def send(self, node: str, platform: str, records: list[dict[str, Any]]) -> list[dict]:
        records = [{**r, "platform": platform} for r in records]
        self.sent += [(node, platform, r) for r in records]
        _, receipts = ingest.ingest_records(self.nodes[node], platform, records)
        return receipts.to_pylist()

    def sync(self, node: str) -> federation.Synced:
        return federation.sync(self.nodes[node], self.transports[node])

    def receipt(self, node: str, platform: str, record_id: str) -> tuple[str, str, int]:
        r = queries.receipt(self.nodes[node], platform, record_id)
        return r.status, r.reason, r.reduction_g

    def verified(self) -> None:
        for code, app in self.nodes.items():
            assert ledger.verify(app) == [], code


def _app(url: str, key: Path, code: str | None = None) -> App:
    instance = bootstrap(Settings(url, key, exchange_code=code), clock=lambda: NOW)
    admin.init(instance)
    return instance


@pytest.fixture
def make_federation(
    new_database: Callable[[Path], str], tmp_path: Path
) -> Iterator[Callable[[], Federation]]:
    made: list[App] = []

    def make() -> Federation:
        folder = tmp_path / f"f{len(made)}"
        folder.mkdir()
        (folder / "registry").mkdir()
        registry = _app(new_database(folder / "registry"), folder / "registry" / "subject.key")
        made.append(registry)
        shared = folder / "federation.key"
        nodes: dict[str, App] = {}
        transports: dict[str, InProcess] = {}
        for code, platforms in NODES.items():
            (folder / code).mkdir()
            key = folder / code / "subject.key"
            if shared.exists():
                shutil.copy(shared, key)
            app = _app(new_database(folder / code), key, code)
            if not shared.exists():
                shutil.copy(key, shared)
            made.append(app)
            for p in platforms:
                admin.add_platform(app, p)
            me = federation.identity(app)
            federation.enrol(registry, me.node, me.public_key, me.fingerprint)
            federation.join(app, URL, federation.public_key(registry))
            nodes[code] = app
            transports[code] = InProcess(registry)
        return Federation(registry, nodes, transports)

    yield make
    for app in made:
        app.close()


def bus(record_id: str, minute: int = 0, subject: str = "13800138000", **more: Any) -> dict:
    """A 5 km, 20-minute bus ride in Beijing on 1 October 2026, `minute` minutes after 08:00."""
    start = datetime(2026, 10, 1, 8, tzinfo=CHINA) + timedelta(minutes=minute)
    end = start + timedelta(minutes=20)
    return trip(record_id, subject=subject, start=start.isoformat(), end=end.isoformat(), **more)


def test_a_trip_reported_at_two_nodes_is_credited_once_by_the_first_registered(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    (bj,) = f.send("BJ", "amap", [bus("t1")])
    (sh,) = f.send("SH", "bank", [bus("b1", minute=2)])
    assert (bj["status"], bj["reason"]) == ("held", "awaiting_registry")
    assert (sh["status"], sh["reason"]) == ("held", "awaiting_registry")
    # Shanghai's node registers first: its record came first nationwide.
    done = f.sync("SH")
    assert (done.batches, done.first, done.credited) == (1, 1, 1)
    done = f.sync("BJ")
    assert (done.duplicates, done.ended_duplicate) == (1, 1)
    assert f.receipt("SH", "bank", "b1") == ("credited", "registered", 1079)
    assert f.receipt("BJ", "amap", "t1") == ("duplicate", "duplicate_federated", 0)
    assert queries.receipt(f.nodes["BJ"], "amap", "t1").decided_at is not None
    # Nothing more to send; a replay of the duplicate is answered with its current receipt.
    assert f.sync("BJ").batches == 0
    (again,) = f.send("BJ", "amap", [bus("t1")])
    assert (again["status"], again["reason"]) == ("duplicate", "duplicate_federated")
    f.verified()
    between = federation.registry(f.registry).duplicates_between()
    assert between == [("BJ", "SH", 1)]


def test_the_same_receipt_number_at_two_nodes_is_one_behaviour(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    f.send("GZ", "wechat", [event("w1", ref="RCPT-0042 ")])
    f.send("SH", "bank", [event("k1", ref="rcpt-0042", subject="13900139000")])
    f.sync("GZ")
    f.sync("SH")
    assert f.receipt("GZ", "wechat", "w1")[0] == "credited"
    assert f.receipt("SH", "bank", "k1") == ("duplicate", "duplicate_federated", 0)
    f.verified()


def test_a_local_duplicate_is_final_and_still_registered_as_a_claim(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    _, b = f.send("BJ", "amap", [bus("t1"), bus("t2", minute=9)])
    assert (b["status"], b["reason"]) == ("duplicate", "duplicate_overlap")
    done = f.sync("BJ")
    assert (done.claims, done.first, done.duplicates) == (2, 1, 1)
    # A Shanghai trip overlapping the duplicate only (11 of 20 minutes; 2 with the credited
    # one) is a duplicate too: duplicates block.
    f.send("SH", "bank", [bus("b1", minute=18)])
    f.sync("SH")
    assert f.receipt("SH", "bank", "b1")[0] == "duplicate"
    assert f.receipt("BJ", "amap", "t1")[0] == "credited"
    f.verified()


def test_a_record_rejected_before_it_is_registered_is_withdrawn_in_its_place(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    f.send("BJ", "amap", [bus("t1")])
    seq = queries.receipt(f.nodes["BJ"], "amap", "t1").seq
    # Not released while it awaits the registry; rejected, it is.
    assert review.decide_held(f.nodes["BJ"], [seq], Decision.RELEASE, "ops", "fine") == []
    assert review.decide_held(f.nodes["BJ"], [seq], Decision.REJECT, "ops", "fake") == [seq]
    done = f.sync("BJ")
    assert (done.claims, done.withdrawn) == (1, 1)
    # Withdrawn, it blocks nothing registered after: Shanghai's record is first.
    f.send("SH", "bank", [bus("b1", minute=2)])
    f.sync("SH")
    assert f.receipt("SH", "bank", "b1") == ("credited", "registered", 1079)
    assert f.receipt("BJ", "amap", "t1")[0] == "rejected"
    f.verified()


def test_a_lost_answer_is_answered_again_and_applied_once(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    f.send("BJ", "amap", [bus("t1"), bus("t9", minute=40)])
    f.transports["BJ"].lose_answers = 1
    done = f.sync("BJ")
    assert done.unreachable
    assert done.batches == 0
    assert f.receipt("BJ", "amap", "t1")[0] == "held"
    # Meanwhile the node settles more: they go in the next batch, after the lost one.
    f.send("BJ", "amap", [bus("t3", minute=80)])
    done = f.sync("BJ")
    assert (done.batches, done.claims, done.credited) == (2, 3, 3)
    order = federation.registry(f.registry).order()
    assert [p for p, *_ in order] == [1, 2, 3]
    assert {s for *_, s, _ in order} == {"first"}
    f.verified()


def test_an_unreachable_registry_leaves_records_held_until_it_returns(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    f.transports["BJ"].down = True
    f.send("BJ", "amap", [bus("t1")])
    done = f.sync("BJ")
    assert done.unreachable
    assert done.claims == 0
    f.send("BJ", "amap", [bus("t2", minute=60)])
    assert federation.status(f.nodes["BJ"])["held_awaiting_registry"] == 2
    f.transports["BJ"].down = False
    done = f.sync("BJ")
    assert (done.batches, done.credited) == (2, 2)
    assert federation.status(f.nodes["BJ"])["held_awaiting_registry"] == 0
    f.verified()


def test_the_registry_refuses_what_is_not_a_node_s_next_signed_batch(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    registry = f.registry
    f.send("BJ", "amap", [bus("t1")])
    f.sync("BJ")
    with f.nodes["BJ"].intake() as uow:
        body = uow.federation.unanswered()
    assert body is None
    with f.nodes["BJ"].engine.connect() as conn:
        sent = conn.execute(text("select body from federation_outbox")).scalar_one().encode()
    signature = federation._private(f.nodes["BJ"]).sign(sent).hex()
    # Sent again: the same answer.
    first = federation.receive(registry, "BJ", sent, signature)
    assert first == federation.receive(registry, "BJ", sent, signature)
    with pytest.raises(AuthenticationError, match="not signed"):
        federation.receive(registry, "SH", sent, signature)
    with pytest.raises(AuthenticationError, match="not enrolled"):
        federation.receive(registry, "TJ", sent, signature)
    document = json.loads(sent)

    def signed(doc: dict[str, Any]) -> tuple[bytes, str]:
        body = json.dumps(doc).encode()
        return body, federation._private(f.nodes["BJ"]).sign(body).hex()

    with pytest.raises(RefusedError, match="other content") as refused:
        federation.receive(registry, "BJ", *signed({**document, "tallies": {"records": 9}}))
    assert refused.value.code == "batch_conflict"
    with pytest.raises(RefusedError, match="expected 2") as refused:
        federation.receive(registry, "BJ", *signed({**document, "batch": 3}))
    assert refused.value.code == "batch_out_of_order"
    bad = {**document, "batch": 2, "events": [{"op": "claim", "id": "ab" * 20}]}
    with pytest.raises(InputError, match=r"events\[0\]: a claim has a ref, a trip, or both"):
        federation.receive(registry, "BJ", *signed(bad))
    with pytest.raises(InputError, match="another registry"):
        federation.receive(registry, "BJ", *signed({**document, "batch": 2, "registry": "0" * 64}))
    with pytest.raises(RefusedError) as refused:
        federation.receive(registry, "BJ", *signed({**document, "batch": 2}))
    assert refused.value.code == "claim_registered"
    # None of it changed the registry.
    assert len(federation.registry(registry).order()) == 1


def test_an_answer_not_signed_by_the_registry_is_not_applied(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    f.send("BJ", "amap", [bus("t1")])
    transport = f.transports["BJ"]
    real = transport.post

    def forged(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        status, answer, signature = real(url, body, headers)
        return status, answer.replace(b'"first"', b'"first" '), signature

    transport.post = forged  # type: ignore[method-assign]
    with pytest.raises(FederationError, match="not signed by the registry"):
        f.sync("BJ")
    assert f.receipt("BJ", "amap", "t1")[0] == "held"
    transport.post = real  # type: ignore[method-assign]
    assert f.sync("BJ").credited == 1
    f.verified()


def test_enrolment_refuses_a_node_whose_claims_key_differs(
    make_federation: Callable[[], Federation], tmp_path: Path
) -> None:
    f = make_federation()
    with pytest.raises(RefusedError, match="claims key differs"):
        federation.enrol(f.registry, "TJ", "ab" * 32, "cd" * 16)
    me = federation.identity(f.nodes["BJ"])
    with pytest.raises(RefusedError, match="enrolled already"):
        federation.enrol(f.registry, "BJ", me.public_key, me.fingerprint)
    with pytest.raises(InputError, match="64 hex"):
        federation.enrol(f.registry, "TJ", "xyz", "cd" * 16)


# The whole statement: any traffic, any order of syncs, equals one node fed in registry order.

PEOPLE = ["13800138000", "13900139000", "13700137000"]
_record = st.fixed_dictionaries(
    {
        "node": st.sampled_from(sorted(NODES)),
        "kind": st.sampled_from(["bus", "bus", "event"]),
        "person": st.integers(0, len(PEOPLE) - 1),
        "minute": st.integers(0, 39),
        "ref": st.sampled_from([None, None, "R1", "R2"]),
        "replay": st.booleans(),
    }
)


def test_any_traffic_equals_one_node_fed_in_the_registry_s_order(
    make_federation: Callable[[], Federation],
    new_database: Callable[[Path], str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    """Random traffic of three nodes, synced in a random interleaving: 25 examples on SQLite,
    10 on PostgreSQL (each makes five databases)."""
    sqlite = request.node.callspec.params["new_database"] == "sqlite"

    @settings(
        max_examples=25 if sqlite else 10,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        traffic=st.lists(_record, min_size=1, max_size=14),
        syncs=st.lists(st.sampled_from(sorted(NODES)), max_size=8),
    )
    def check(traffic: list[dict[str, Any]], syncs: list[str]) -> None:
        _equals_one_node(make_federation, new_database, tmp_path_factory, traffic, syncs)

    check()


def _equals_one_node(
    make_federation: Callable[[], Federation],
    new_database: Callable[[Path], str],
    tmp_path_factory: pytest.TempPathFactory,
    traffic: list[dict[str, Any]],
    syncs: list[str],
) -> None:
    f = make_federation()
    made: dict[tuple[str, str], dict[str, Any]] = {}
    for i, r in enumerate(traffic):
        platform = NODES[r["node"]][0]
        if r["replay"] and made:
            # A platform sends one of its own records again.
            own = [(p, x) for (p, _), x in made.items() if p == platform]
            if own:
                f.send(r["node"], platform, [own[-1][1]])
                continue
        subject = PEOPLE[r["person"]]
        if r["kind"] == "bus":
            record = bus(f"r{i}", minute=r["minute"], subject=subject, ref=r["ref"])
        else:
            record = event(f"r{i}", subject=subject, ref=r["ref"])
        made[(platform, record["record_id"])] = {**record, "platform": platform}
        f.send(r["node"], platform, [record])
        if syncs:
            f.sync(syncs.pop(0))
    for code in NODES:
        f.sync(code)
    f.verified()
    # Every record ended, and one node fed every record in the registry's order agrees.
    outcome = final_receipts(f.nodes, NODES)
    folder = tmp_path_factory.mktemp("reference")
    reference = _app(new_database(folder), folder / "subject.key")
    try:
        expected = one_node(f.nodes, f.registry, NODES, lambda p, r: made[(p, r)], reference)
    finally:
        reference.close()
    assert outcome == expected
    # No two credited records nationwide are one behaviour, by the spec's rules read directly.
    credited = [made[k] for k, (status, _) in outcome.items() if status == "credited"]
    refs = [(r["scene"], r["ref"].strip().casefold()) for r in credited if r.get("ref")]
    assert len(refs) == len(set(refs))
    for a, b in itertools.combinations([r for r in credited if "end" in r], 2):
        if a["subject"] == b["subject"]:
            assert not overlaps(*_interval(a), *_interval(b)), (a, b)


def _interval(record: dict[str, Any]) -> tuple[int, int]:
    start = datetime.fromisoformat(record["start"]).timestamp()
    end = datetime.fromisoformat(record["end"]).timestamp()
    return int(start * 1000), int(end * 1000)


def test_nodes_sharing_the_subject_key_sign_with_keys_of_their_own(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    bj, sh = f.nodes["BJ"], f.nodes["SH"]
    assert bj.secret == sh.secret
    for purpose in PURPOSES:
        assert bj.key(purpose)[0] >= 1, purpose
        assert bj.key(purpose)[1] != sh.key(purpose)[1], purpose
    assert federation.public_key(bj) != federation.public_key(sh)
    assert ledger.public_keys(bj) != ledger.public_keys(sh)
    # Joining again is refused; nothing is rotated twice.
    with pytest.raises(RefusedError, match="joined a registry already"):
        federation.join(bj, URL, federation.public_key(f.registry))
    assert federation.own_keys(bj) == []


class OverHttp:
    """A transport to the registry's HTTP application (in this process)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        response = self.client.post(
            url.removeprefix(URL), content=body, headers={**headers, "Content-Type": "x"}
        )
        return (
            response.status_code,
            response.content,
            response.headers.get(federation.HEADER_SIGNATURE, ""),
        )


def test_the_registry_over_http_answers_signed_batches_and_problem_documents(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    client = TestClient(create_registry_app(f.registry))
    f.transports["BJ"].post = OverHttp(client).post  # type: ignore[method-assign]
    f.send("BJ", "amap", [bus("t1")])
    assert f.sync("BJ").credited == 1
    described = client.get("/v1/federation/registry").json()
    assert described["public_key"] == federation.public_key(f.registry)
    assert described["nodes"] == ["BJ", "GZ", "SH"]
    refused = client.post(
        federation.PATH,
        content=b"{}",
        headers={federation.HEADER_NODE: "BJ", federation.HEADER_SIGNATURE: "00" * 64},
    )
    assert refused.status_code == 401
    assert refused.json()["code"] == "bad_signature"
    # A regulator of the registry reads every node's figures; nobody else does.
    assert client.get("/v1/federation/oversight").status_code == 401
    token = oversight.issue_staff_token(f.registry, "NDRC", oversight.Role.REGULATOR).token
    seen = client.get(
        "/v1/federation/oversight", headers={"Authorization": f"Bearer {token}"}
    ).json()
    bj = next(n for n in seen["nodes"] if n["code"] == "BJ")
    assert (bj["batches"], bj["claims"], bj["first"]) == (1, 1, 1)
    assert bj["tallies"]["held"] == 1  # as the node counted when it sent the batch
    assert "subject" not in json.dumps(seen)
    # A refusal reaches the node's operator as one line; the batch waits, unchanged.
    f.transports["SH"].post = OverHttp(client).post  # type: ignore[method-assign]
    f.send("SH", "bank", [bus("b1", minute=90)])
    with f.nodes["SH"].engine.begin() as conn:
        conn.execute(text("update federation_link set next_batch = 5"))
    done = f.sync("SH")
    assert done.refused == ["409 batch_out_of_order: batch 5 of SH; expected 1"]
    assert f.receipt("SH", "bank", "b1")[0] == "held"


def test_two_processes_syncing_one_node_register_each_batch_once(
    make_federation: Callable[[], Federation],
) -> None:
    """`puhui serve` syncs in the background while an operator runs `puhui federation sync`."""
    f = make_federation()
    node = f.nodes["BJ"]
    failures: list[BaseException] = []

    def syncing() -> None:
        other = bootstrap(
            Settings(node.settings.database_url, node.settings.key_file, exchange_code="BJ"),
            clock=lambda: NOW,
        )
        try:
            for _ in range(10):
                federation.sync(other, f.transports["BJ"])
        except BaseException as error:
            failures.append(error)
        finally:
            other.close()

    for i in range(6):
        f.send("BJ", "amap", [bus(f"t{i}", minute=30 * i)])
    threads = [threading.Thread(target=syncing) for _ in range(2)]
    for th in threads:
        th.start()
    for i in range(6, 12):
        f.send("BJ", "amap", [bus(f"t{i}", minute=30 * i)])
    for th in threads:
        th.join()
    assert failures == []
    f.sync("BJ")
    order = federation.registry(f.registry).order()
    assert len(order) == 12
    statuses = {queries.receipt(node, "amap", f"t{i}").status for i in range(12)}
    assert statuses == {"credited"}
    f.verified()


def test_a_node_registers_the_credits_it_certifies_and_no_duplicate_s_credit_is_certified(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    bj = f.nodes["BJ"]
    phones = [f"1380000{c:04d}" for c in range(3)]
    # 60 receipts of 100 kg of paper in Chengdu in October (20 000 g each, the day's cap).
    f.send(
        "BJ",
        "amap",
        [
            event(f"e{c}-{d}", subject=p, quantity="100", ref=f"R-{c}-{d}",
                  start=f"2026-10-{d:02d}T10:00:00+08:00")
            for c, p in enumerate(phones)
            for d in range(1, 21)
        ],
    )  # fmt: skip
    assert f.sync("BJ").credited == 60
    for p in phones:
        consent.grant(bj, queries.pseudonym_of(bj, p), "amap", frozenset({Scope.CERTIFY}), 90)
    market.certify(bj, "2026-10", "cn-common@1.0.0", "51", "k-1", "staff:ops")
    # One unit (1 t) is the oldest 50 credits; the other 10 wait in the pool.
    done = f.sync("BJ")
    assert (done.certified, done.certifications_refused) == (50, 0)
    assert federation.status(bj)["claims_certified"] == 50
    with f.registry.engine.connect() as conn:
        assert conn.execute(text("select count(*) from common_certifications")).scalar() == 50
    assert f.sync("BJ").batches == 0  # sent once
    # Shanghai's node received one of the receipts later: a duplicate, never credited. A node
    # that certified it all the same would be refused by the registry.
    f.send("SH", "bank", [event("x1", subject=phones[0], quantity="100", ref="r-0-1",
                                start="2026-10-01T10:00:00+08:00")])  # fmt: skip
    f.sync("SH")
    assert f.receipt("SH", "bank", "x1")[0] == "duplicate"
    sh = f.nodes["SH"]
    with sh.intake() as uow:
        link = uow.federation.link()
        assert link is not None
        (claim,) = uow.federation.claim_ids([queries.receipt(sh, "bank", "x1").seq]).values()
    forged = canonical(
        batch_document(
            link.registry_key,
            "SH",
            link.next_batch,
            [Event(Op.CERTIFY, Claim(claim, None, None, None, None), "ab" * 32),
             Event(Op.CERTIFY, Claim("cd" * 20, None, None, None, None), "ab" * 32)],
            {},
        )
    )  # fmt: skip
    answer, _ = federation.receive(
        f.registry, "SH", forged, federation._private(sh).sign(forged).hex()
    )
    assert json.loads(answer)["refused"] == [[claim, "not_first"], ["cd" * 20, "not_registered"]]
    f.verified()


ACME, BETA = "91350100M000100Y43", "91110000MA01ABCDEX"


def _certified(f: Federation, node: str, platform: str, citizens: int, tag: str) -> str:
    """A node's citizens take part and it certifies October's paper receipts in Chengdu (20 kg
    each, 20 days) into a batch without a buffer; the batch's serial."""
    app = f.nodes[node]
    phones = [f"139{tag}{c:07d}" for c in range(citizens)]
    f.send(
        node,
        platform,
        [
            event(f"{tag}{c}-{d}", subject=p, quantity="100", ref=f"{tag}-{c}-{d}",
                  start=f"2026-10-{d:02d}T10:00:00+08:00")
            for c, p in enumerate(phones)
            for d in range(1, 21)
        ],
    )  # fmt: skip
    f.sync(node)
    for p in phones:
        consent.grant(app, queries.pseudonym_of(app, p), platform, frozenset({Scope.CERTIFY}), 90)
    done = market.certify(app, "2026-10", "cn-common@1.0.0", "51", f"c-{tag}", "staff:ops",
                          buffer_bp=0)  # fmt: skip
    return str(done.result["batch"]["serial"])


def test_units_move_between_nodes_registries_and_are_in_one_registry_at_a_time(
    make_federation: Callable[[], Federation],
) -> None:
    """A company at Beijing's node sends units to one at Shanghai's, which retires one and sends
    one back; a send the registry refuses comes back; a node cannot send units it does not
    hold; every ledger verifies, and the registry's figures reach the nodes."""
    f = make_federation()
    bj, sh = f.nodes["BJ"], f.nodes["SH"]
    bj_serial = _certified(f, "BJ", "amap", 9, "1")  # 3.6 t: 3 units
    sh_serial = _certified(f, "SH", "bank", 5, "2")  # 2 t: 2 units, numbered 1 and 2 too
    assert (bj_serial, sh_serial) == (
        "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-1-3",
        "CN-PH-SH-CN-COMMON.V1.0.0-2026-10-1-2",
    )
    market.add_company(bj, ACME, "Acme 有限公司")
    market.sell(bj, ACME, 3, "60", "s-1", "staff:ops")
    sent = market.export(bj, ACME, "SH", BETA, "Beta 有限公司", 2, "x-1", "company:acme")
    assert sent.result["serials"] == ["CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-1-2"]
    # The same request again is answered the same; nothing else leaves.
    again = market.export(bj, ACME, "SH", BETA, "Beta 有限公司", 2, "x-1", "company:acme")
    assert again.replayed
    assert again.result == sent.result
    with pytest.raises(RefusedError, match="the holding has 1"):
        market.export(bj, ACME, "SH", BETA, "Beta", 2, "x-2", "company:acme")
    with pytest.raises(RefusedError, match="this node"):
        market.export(bj, ACME, "BJ", BETA, "Beta", 1, "x-3", "company:acme")
    assert registry.company(bj, ACME).held == 1
    done = f.sync("BJ")
    assert (done.units_sent, done.units_returned) == (2, 0)
    # Shanghai receives them when it syncs: Beta, unknown there, is registered with its name.
    done = f.sync("SH")
    assert done.units_received == 2
    beta = registry.company(sh, BETA)
    assert (beta.name, beta.held) == ("Beta 有限公司", 2)
    assert [b.serial for b in beta.blocks] == ["CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-1-2"]
    # Beijing's batch is in Shanghai's registry under its own serials, beside Shanghai's own.
    assert registry.batch(sh, "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-2-2").serial == bj_serial
    assert registry.batch(sh, sh_serial).exchange == "SH"
    assert f.sync("SH").units_received == 0  # received once
    # Beta retires one there and sends the other back to Acme at Beijing.
    market.retire(sh, BETA, 1, "Beta 有限公司", "2026 ESG report", "r-1", "company:beta")
    market.export(sh, BETA, "BJ", ACME, "Acme 有限公司", 1, "x-4", "company:beta")
    assert f.sync("SH").units_sent == 1
    assert f.sync("BJ").units_received == 1
    acme = registry.company(bj, ACME)
    assert acme.held == 2
    assert [b.serial for b in acme.blocks] == [
        "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-2-2",  # back from Shanghai
        "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-3-3",
    ]
    # A send to a node the registry does not know is refused, and the units come back.
    market.export(bj, ACME, "TJ", BETA, "Beta 有限公司", 1, "x-5", "company:acme")
    assert registry.company(bj, ACME).held == 1
    done = f.sync("BJ")
    assert (done.units_sent, done.units_returned) == (0, 1)
    assert registry.company(bj, ACME).held == 2
    assert federation.status(bj)["units_returned"] == 1
    # The registry holds where every unit is: Beijing's unit 1 at Shanghai (retired there),
    # 2 and 3 at Beijing; Shanghai's two at Shanghai.
    with f.registry.engine.connect() as conn:
        custody = conn.execute(
            text("select origin, first, last, node from common_unit_blocks order by origin, first")
        ).all()
    assert [tuple(r) for r in custody] == [("BJ", 1, 1, "SH"), ("BJ", 2, 3, "BJ"),
                                           ("SH", 1, 2, "SH")]  # fmt: skip
    # Shanghai cannot send Beijing's unit 3, which is not in its registry: refused.
    with sh.intake() as uow:
        link = uow.federation.link()
        assert link is not None
    root = registry.batch(bj, bj_serial).root
    forged = canonical(
        batch_document(
            link.registry_key, "SH", link.next_batch, [], {},
            [Send(99, "BJ", root, 3, 3, "GZ", BETA, "Beta")],
        )
    )  # fmt: skip
    answer, _ = federation.receive(
        f.registry, "SH", forged, federation._private(sh).sign(forged).hex()
    )
    assert json.loads(answer)["units_refused"] == [[99, "units_not_held"]]
    # The registry's figures reach each node with its inbox.
    f.sync("GZ")
    figures = federation.sync(f.nodes["GZ"], f.transports["GZ"], oversight=True)
    assert figures.unreachable is None
    found = federation.registry_figures(f.nodes["GZ"])
    assert found is not None
    units = {u["node"]: u for u in found[0]["units"]}
    assert (units["BJ"]["issued"], units["BJ"]["held"], units["BJ"]["sent"]) == (3, 2, 2)
    assert (units["SH"]["issued"], units["SH"]["held"], units["SH"]["received"]) == (2, 3, 2)
    f.verified()
    # Forging a node's registry is caught by its ledger check: a unit abroad given to a company.
    with sh.engine.begin() as conn:
        conn.execute(text("update unit_blocks set holder = 'company', node = null, "
                          "company_id = (select id from companies where uscc = :u) "
                          "where holder = 'abroad' and first = 2"), {"u": BETA})  # fmt: skip
    assert {v.check for v in ledger.verify(sh)} >= {"holdings_mismatch"}


def test_the_regulator_of_a_node_sees_every_node_s_figures(
    make_federation: Callable[[], Federation],
) -> None:
    f = make_federation()
    f.send("BJ", "amap", [bus("t1")])
    f.send("SH", "bank", [bus("t2")])
    f.sync("BJ")
    f.sync("SH")
    sh = f.nodes["SH"]
    federation.sync(sh, f.transports["SH"], oversight=True)
    client = TestClient(create_app(sh))
    token = oversight.issue_staff_token(sh, "NDRC", oversight.Role.REGULATOR).token
    client.cookies.set(COOKIES["staff"], token)
    page = client.get("/dashboard/regulator?lang=en").text
    assert "The common mechanism, nationwide" in page
    nodes = page.split('data-testid="common-nodes"')[1].split("</table>")[0]
    # Beijing registered the trip first; Shanghai's was its duplicate.
    assert re.search(r">BJ</th><td class=\"num\">1</td>\s*<td class=\"num\">1</td>", nodes)
    assert re.search(r">SH</th><td class=\"num\">1</td>\s*<td class=\"num\">0</td>", nodes)
    between = page.split('data-testid="common-duplicates"')[1].split("</table>")[0]
    assert '>SH</th><td class="num">1</td>' in between
    catalogue = page.split('data-testid="common-methodologies"')[1].split("</table>")[0]
    assert re.search(r">cn-common@1.0.0</th><td>BJ</td><td>BJ, SH</td>", catalogue)
    assert "The shared methodology catalogue" in page


def test_nodes_share_one_methodology_catalogue_and_add_regional_versions(
    make_federation: Callable[[], Federation], tmp_path: Path
) -> None:
    """Each node registers the versions it computes with: the first adds a version to the
    shared catalogue, the others recognise it; a node's own regional version is added; a node
    whose definition of a shared version differs is told so."""
    f = make_federation()
    shipped = shipped_folder()
    # Guangzhou adds a regional version of its own.
    regional = tmp_path / "gz-methodologies"
    regional.mkdir()
    text_ = (shipped / "sz-public-transit.toml").read_text(encoding="utf-8")
    text_ = text_.replace('id = "sz-public-transit"', 'id = "gz-public-transit"')
    (regional / "gz.toml").write_text(text_.replace('["440300"]', '["440100"]'), "utf-8")
    f.nodes["GZ"].__dict__["catalogue"] = load_catalogue(extra=regional)
    # Shanghai's copy of cn-common 1.0.0 has another daily cap for walking.
    changed = tmp_path / "sh-methodologies"
    shutil.copytree(shipped, changed)
    common = (changed / "cn-common.toml").read_text(encoding="utf-8")
    assert "max_g = 296 }" in common
    (changed / "cn-common.toml").write_text(common.replace("max_g = 296 }", "max_g = 300 }"))
    f.nodes["SH"].__dict__["catalogue"] = load_catalogue(folder=changed)
    shipped_refs = sorted(m.ref for m in load_catalogue().methodologies)
    assert f.sync("BJ").methodologies == dict.fromkeys(shipped_refs, "added")
    assert f.sync("SH").methodologies == {
        **dict.fromkeys(shipped_refs, "recognised"),
        "cn-common@1.0.0": "differs",
    }
    assert f.sync("GZ").methodologies == {
        **dict.fromkeys(shipped_refs, "recognised"),
        "gz-public-transit@1.0.0": "added",
    }
    assert f.sync("BJ").batches == 0  # registered once
    assert federation.status(f.nodes["SH"])["methodologies"]["cn-common@1.0.0"] == "differs"
    catalogue = {v["ref"]: v for v in federation.figures(f.registry)["methodologies"]}
    assert (catalogue["cn-common@1.0.0"]["nodes"], catalogue["cn-common@1.0.0"]["differs"]) == (
        ["BJ", "GZ"],
        ["SH"],
    )
    assert catalogue["gz-public-transit@1.0.0"]["added_by"] == "GZ"
    # Shanghai corrects its copy: the shipped definition is registered and recognised.
    f.nodes["SH"].__dict__["catalogue"] = load_catalogue()
    f.nodes["SH"].memo.pop("methodology_fingerprints")
    assert f.sync("SH").methodologies == {"cn-common@1.0.0": "recognised"}
    catalogue = {v["ref"]: v for v in federation.figures(f.registry)["methodologies"]}
    assert catalogue["cn-common@1.0.0"]["nodes"] == ["BJ", "GZ", "SH"]
