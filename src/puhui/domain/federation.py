"""The common mechanism across the exchanges' nodes, stated once: what leaves a node, and how the
registry decides which node's record of a behaviour came first.

Each carbon exchange runs a node: its own database, member platforms, citizens' accounts and
market. A node settles its records as a single installation does (`domain.settlement`), then
**registers** every valid record's claim with the common mechanism's registry, in its own
receive order. The registry puts the claims of every node in one global order (the order it
registers them in) and answers each one:

- `first`: no live claim registered before it is the same behaviour;
- `duplicate`: the earliest such claim, with its node and the rule that matched
  (`duplicate_ref`, `duplicate_overlap`).

The rule is settlement's own (spec `activity-record-v1.md`, "One behaviour, one credit"), on
keyed digests instead of values:

1. Two claims with the same `ref` digest are one behaviour. The digest is of the scene and the
   folded ref, so this is "the same scene and the same ref".
2. Two trip claims with the same `citizen` digest whose intervals overlap by more than half of
   the shorter are one behaviour (`domain.settlement.overlaps`).
3. Every claim registered, first or duplicate, is a claim: a duplicate is the same behaviour as
   a credit, and blocks as one. A **withdrawn** claim (its record was rejected at its node after
   it was settled: refused on review, not corroborated in time) blocks nothing registered after
   its withdrawal, exactly as a rejected held record blocks nothing settled after the decision.

Only what these rules need leaves a node, as keyed digests under the **claims key**, which
every node of a federation derives from the subject key they share and the registry never
holds (`claims_key`): of the scene and ref, of the citizen's pseudonym (for trips only), and of
the node, platform and record id (the claim's id); and a trip's start and end. Never an
identifier, a place, a device or an amount.

An event without a ref has nothing to compare (`registered`): no record anywhere is its
duplicate, so it is credited at once and not registered.

Because a node registers in its own receive order, a record that its node settled as a
duplicate is a duplicate nationally too (the claim it duplicates was registered before it and
still blocks it). A record its node would credit is **held** (spec v1.1) with the reason
`awaiting_registry` until its claim is answered: `first` credits it (or leaves it held for
what else it waits for), `duplicate` ends it as a duplicate, reason `duplicate_federated`, its
pending grams voided. Nothing is credited that another node's record came before, and nothing
is ever taken back.

A node also registers the credits it certifies into batches of units; the registry records
them only for the node's own live claims that were `first` (`certifiable`), so no behaviour is
certified by two nodes.

The wire format (docs/federation.md) is canonical JSON (`canonical`), signed with Ed25519 by the
node and, in the answer, by the registry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from puhui.domain import market
from puhui.domain.errors import PuhuiError
from puhui.domain.reasons import Reason
from puhui.domain.rules import LONGEST_TRIP_MS
from puhui.domain.settlement import overlaps

PROTOCOL = "puhui-federation/1"
# The most events a node sends in one batch, and the most a registry accepts.
MAX_EVENTS = 5_000
_CLAIMS_CONTEXT = b"puhui federation claims v1"
NODE_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class FederationError(PuhuiError):
    """A batch, an answer or a claim that does not follow the protocol (the message says which
    field and why; it never repeats a value)."""


def claims_key(subject_key: bytes) -> bytes:
    """The key every claim digest is keyed with: derived from the subject key that a
    federation's nodes share, with a context of its own, so that the digests are linkable
    across nodes but to nothing a node stores."""
    return hmac.digest(subject_key, _CLAIMS_CONTEXT, hashlib.sha256)


def key_fingerprint(key: bytes) -> str:
    """What identifies a claims key without revealing it: the registry refuses a node whose
    fingerprint differs from the federation's (its digests would match nothing)."""
    return hmac.digest(key, b"puhui federation fingerprint", hashlib.sha256).hex()[:32]


def _digest(key: bytes, *parts: str) -> str:
    message = "\x00".join(parts).encode("utf-8")
    return hmac.digest(key, message, hashlib.sha256).hex()


def registered(ref: str | None, start_ms: int | None, end_ms: int | None) -> bool:
    """Whether a valid record is registered: it carries something the registry compares, a
    ref or a trip's interval. An event without a ref is no other record's duplicate anywhere:
    it waits for nothing."""
    return ref is not None or (start_ms is not None and end_ms is not None)


class Claim(NamedTuple):
    """A record's claim as the registry sees it: digests and a trip's interval only."""

    id: str  # of (node, platform, record id): unique per record, stable across retries
    ref: str | None  # of (scene, folded ref), when the record carries a ref
    citizen: str | None  # of the citizen's pseudonym, trips only
    start_ms: int | None  # trips only
    end_ms: int | None  # trips only

    @property
    def is_trip(self) -> bool:
        """Whether the overlap rule applies to it."""
        return self.citizen is not None and self.start_ms is not None and self.end_ms is not None


def claim_of(
    key: bytes,
    node: str,
    platform: str,
    record_id: str,
    scene: str,
    ref: str | None,
    pseudonym: str,
    start_ms: int | None,
    end_ms: int | None,
) -> Claim:
    """The claim of a valid record (its ref folded as stored; a trip has an end)."""
    trip = end_ms is not None and start_ms is not None
    return Claim(
        id=_digest(key, "claim", node, platform, record_id)[:40],
        ref=None if ref is None else _digest(key, "ref", scene, ref),
        citizen=_digest(key, "citizen", pseudonym) if trip else None,
        start_ms=start_ms if trip else None,
        end_ms=end_ms if trip else None,
    )


class Verdict(StrEnum):
    """The registry's answer to a claim."""

    FIRST = "first"
    DUPLICATE = "duplicate"


class Answer(NamedTuple):
    """What the registry answers for one claim: its place in the global order, the verdict,
    and for a duplicate the rules that matched and the earliest claim it duplicates."""

    id: str
    position: int
    verdict: Verdict
    reasons: tuple[Reason, ...] = ()
    of_node: str | None = None
    of_claim: str | None = None
    of_position: int | None = None  # the registry's own reference; not on the wire


class Registered(NamedTuple):
    """A claim the registry holds: its place, its node, the claim, and whether it was first."""

    position: int
    node: str
    claim: Claim
    first: bool = True


class Refusal(StrEnum):
    """Why the registry refuses to record a certification."""

    NOT_REGISTERED = "not_registered"  # no live claim of this node by this id
    NOT_FIRST = "not_first"  # the claim is another node's duplicate: never credited


@dataclass
class Register:
    """The registry's book, stated plainly: every live claim in global order.

    It starts empty (the whole history at once) or from the stored live claims a batch can meet
    (`of`); the registry's SQL rendering reads those and lets this book judge the batch."""

    by_ref: dict[str, Registered] = field(default_factory=dict)
    trips: dict[str, list[Registered]] = field(default_factory=lambda: defaultdict(list))
    by_id: dict[tuple[str, str], Registered] = field(default_factory=dict)
    next_position: int = 1

    @classmethod
    def of(cls, live: Iterable[Registered], next_position: int) -> Register:
        """A book holding stored live claims (any order), the next position to give."""
        book = cls(next_position=next_position)
        for r in sorted(live, key=lambda r: r.position):
            book._hold(r)
        return book

    def _hold(self, r: Registered) -> None:
        self.by_id[(r.node, r.claim.id)] = r
        if r.claim.ref is not None:
            self.by_ref.setdefault(r.claim.ref, r)
        if r.claim.is_trip:
            self.trips[r.claim.citizen or ""].append(r)

    def earliest(self, claim: Claim) -> tuple[tuple[Reason, ...], Registered | None]:
        """The rules a claim matches live claims by, and the earliest live claim it matches."""
        found: list[tuple[Reason, Registered]] = []
        if claim.ref is not None and claim.ref in self.by_ref:
            found.append((Reason.DUPLICATE_REF, self.by_ref[claim.ref]))
        if claim.is_trip:
            start, end = claim.start_ms or 0, claim.end_ms or 0
            trips = [
                t
                for t in self.trips.get(claim.citizen or "", [])
                if start - LONGEST_TRIP_MS < (t.claim.start_ms or 0) < end
                and overlaps(t.claim.start_ms or 0, t.claim.end_ms or 0, start, end)
            ]
            if trips:
                found.append((Reason.DUPLICATE_OVERLAP, min(trips, key=lambda t: t.position)))
        if not found:
            return (), None
        return tuple(r for r, _ in found), min((t for _, t in found), key=lambda t: t.position)

    def register(self, node: str, claim: Claim) -> Answer:
        """Register a node's claim, the next in global order; a claim registered before is
        answered as it was (`answer_of`, kept by the caller), never registered twice."""
        reasons, of = self.earliest(claim)
        position = self.next_position
        self.next_position += 1
        self._hold(Registered(position, node, claim, of is None))
        if of is None:
            return Answer(claim.id, position, Verdict.FIRST)
        return Answer(
            claim.id, position, Verdict.DUPLICATE, reasons, of.node, of.claim.id, of.position
        )

    def withdraw(self, node: str, claim_id: str) -> int | None:
        """Withdraw a node's live claim: it blocks nothing registered from now on. Returns the
        position the withdrawal takes effect at, or None when the claim is not live here (never
        registered, or withdrawn already)."""
        r = self.by_id.pop((node, claim_id), None)
        if r is None:
            return None
        if r.claim.ref is not None and self.by_ref.get(r.claim.ref) is r:
            del self.by_ref[r.claim.ref]
            # The next live claim of the same ref, if any, now blocks in its place.
            rest = [o for o in self.by_id.values() if o.claim.ref == r.claim.ref]
            if rest:
                self.by_ref[r.claim.ref] = min(rest, key=lambda o: o.position)
        if r.claim.is_trip:
            self.trips[r.claim.citizen or ""].remove(r)
        return self.next_position


# Units across the nodes' registries ----------------------------------------------------------


class UnitsRefusal(StrEnum):
    """Why the registry refuses to move units from one node's registry to another's."""

    UNKNOWN_BATCH = "units_unknown"  # no batch of units of this origin and root registered
    NOT_HELD = "units_not_held"  # a unit of the range is not in the sending node's registry
    UNKNOWN_NODE = "unknown_node"  # the receiving node is not enrolled
    SAME_NODE = "same_node"  # a node sends to itself


class Issued(NamedTuple):
    """A batch of units as a node registers it: what its public registry shows of it (no
    credit, no citizen), and its Merkle root, by which every node names it."""

    origin: str  # the node that certified it: its serials' exchange code
    root: str
    methodology: str  # id@version
    region: str
    vintage: str
    first: int  # its serial numbers, in the origin's numbering
    last: int


class Send(NamedTuple):
    """Units a node sends to another node's registry, for a company registered there: the
    consecutive units `first`..`last` of the batch of `root`, issued by `origin`."""

    transfer: int  # the sending node's number for it: 1, 2, … (its receipt)
    origin: str
    root: str
    first: int
    last: int
    to: str
    company: str  # the receiving company's unified social credit code
    name: str  # its name, as the sending company gave it


@dataclass
class Custody:
    """Which node's registry holds each unit of every batch of units registered, stated
    plainly. A batch's units start in its origin's registry; a node may send units it holds
    to another node's, and nothing else moves them. So a unit is in one registry at a time,
    and a unit retired in one can never be sold in another.

    It starts from the batches a batch of events can meet (`batches`, `blocks`): the SQL
    rendering reads those rows and lets this statement decide."""

    batches: dict[tuple[str, str], Issued] = field(default_factory=dict)
    # (origin, root) → [(first, last, node holding them)], partitioning the batch's serials
    blocks: dict[tuple[str, str], list[tuple[int, int, str]]] = field(default_factory=dict)

    def issue(self, batch: Issued) -> bool:
        """Register a batch its origin issued (all its units in the origin's registry); False
        when it was registered before (nothing changes)."""
        key = (batch.origin, batch.root)
        if key in self.batches:
            return False
        self.batches[key] = batch
        self.blocks[key] = [(batch.first, batch.last, batch.origin)]
        return True

    def send(self, node: str, s: Send, nodes: Iterable[str]) -> UnitsRefusal | None:
        """Move units from `node`'s registry to `s.to`'s, or say why not (nothing moves)."""
        key = (s.origin, s.root)
        if key not in self.batches:
            return UnitsRefusal.UNKNOWN_BATCH
        if s.to == node:
            return UnitsRefusal.SAME_NODE
        if s.to not in set(nodes):
            return UnitsRefusal.UNKNOWN_NODE
        held = [market.Block(0, a, b) for a, b, at in self.blocks[key] if at == node]
        try:
            taken, _ = market.take_range(held, 0, s.first, s.last)
        except ValueError:
            return UnitsRefusal.NOT_HELD
        moved = [(b.first, b.last, s.to) for b in taken]
        rest: list[tuple[int, int, str]] = []
        for a, b, at in self.blocks[key]:
            if at != node or b < s.first or a > s.last:
                rest.append((a, b, at))
                continue
            if a < s.first:
                rest.append((a, s.first - 1, at))
            if s.last < b:
                rest.append((s.last + 1, b, at))
        self.blocks[key] = _joined(rest + moved)
        return None

    def holds(self, origin: str, root: str) -> dict[str, int]:
        """How many units of a batch each node's registry holds."""
        out: dict[str, int] = defaultdict(int)
        for a, b, at in self.blocks.get((origin, root), []):
            out[at] += b - a + 1
        return dict(out)


def _joined(blocks: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Blocks in order, adjacent ones at the same node joined."""
    out: list[tuple[int, int, str]] = []
    for a, b, at in sorted(blocks):
        if out and out[-1][2] == at and out[-1][1] + 1 == a:
            out[-1] = (out[-1][0], b, at)
        else:
            out.append((a, b, at))
    return out


# The shared methodology catalogue ------------------------------------------------------------


class Recognition(StrEnum):
    """What the registry says of a methodology version a node computes credits with."""

    ADDED = "added"  # no node had registered it: it is in the catalogue now, as this node's
    RECOGNISED = "recognised"  # the catalogue's version, computing alike (same fingerprint)
    DIFFERS = "differs"  # the catalogue has another definition under this id@version


@dataclass
class SharedCatalogue:
    """The methodology versions of the common mechanism, stated plainly: every version a node
    computes credits with is registered, by its `id@version` and fingerprint
    (`Catalogue.fingerprint`). The first node to register a version adds it (a node adds its
    regional versions so); a version registered again with the same fingerprint is
    recognised, so a credit computed by it at one node is computed alike at every node; under
    another fingerprint it differs, and stays out: one `id@version` is one method everywhere."""

    versions: dict[str, tuple[str, str]] = field(default_factory=dict)  # ref → (fp, node)

    def register(self, node: str, ref: str, fingerprint: str) -> Recognition:
        """Register a node's version."""
        known = self.versions.get(ref)
        if known is None:
            self.versions[ref] = (fingerprint, node)
            return Recognition.ADDED
        return Recognition.RECOGNISED if known[0] == fingerprint else Recognition.DIFFERS


# What a node keeps -------------------------------------------------------------------------


class Link(NamedTuple):
    """A node's link to its registry."""

    node: str
    url: str
    registry_key: str
    joined_seq: int
    through_seq: int
    next_batch: int
    certified_through: tuple[int, int] = (0, -1)  # (batch of units, leaf position) sent
    issued_through: int = 0  # batches of units registered up to this one
    inbox_through: int = 0  # units received up to this move of the registry


class Valid(NamedTuple):
    """A valid record as its claim is built from it."""

    seq: int
    platform: str
    record_id: str
    scene: str
    ref: str | None
    pseudonym: str
    start_ms: int | None
    end_ms: int | None


class Outgoing(NamedTuple):
    """The records and withdrawals of the next batch: valid records in seq order, the seqs of
    records to withdraw each at the seq it takes effect before, and the seq the batch takes
    the node through; then the credits certified into batches of units since the last batch,
    and the (batch of units, leaf) it takes the node through; then the batches of units issued
    and the units sent to other nodes."""

    records: list[Valid]
    withdrawals: list[tuple[int, int]]  # (record seq, decided seq)
    through_seq: int
    certified: tuple[tuple[int, str, str], ...] = ()  # (record seq, claim id, root)
    certified_through: tuple[int, int] = (0, -1)
    issued: tuple[Issued, ...] = ()  # batches of units issued since the last batch
    issued_through: int = 0  # the last of them (the node's batch of units id)
    sends: tuple[Send, ...] = ()  # units sent to other nodes, not sent to the registry yet


def certifiable(book: Register, node: str, claim_id: str) -> Refusal | None:
    """Whether a node may certify the credit of one of its claims into a batch of units: only a
    live claim that was first nationwide was credited, so no behaviour is certified by two
    nodes."""
    r = book.by_id.get((node, claim_id))
    if r is None:
        return Refusal.NOT_REGISTERED
    return None if r.first else Refusal.NOT_FIRST


# The wire format ---------------------------------------------------------------------------


class Op(StrEnum):
    """What an event of a batch asks."""

    CLAIM = "claim"
    WITHDRAW = "withdraw"
    CERTIFY = "certify"


class Event(NamedTuple):
    """One event of a node's batch: a claim to register, a claim to withdraw, or a claim whose
    credit was certified into the batch of units of Merkle root `root`."""

    op: Op
    claim: Claim
    root: str | None = None


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: JSON with sorted keys, no spaces, ASCII only."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def batch_document(
    registry: str,
    node: str,
    number: int,
    events: Iterable[Event],
    tallies: Mapping[str, int],
    units: Iterable[Issued | Send] = (),
    methodologies: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A node's batch as sent: the protocol, whom it is for, its number (1, 2, … per node, each
    sent until answered), its events in the node's receive order, the node's tallies, and
    (when there are any) the batches of units it issued and the units it sends to other
    nodes, in its order, and the methodology versions ((id@version, fingerprint)) it computes
    credits with that it has not registered yet."""
    out: list[dict[str, Any]] = []
    for e in events:
        if e.op is Op.WITHDRAW:
            out.append({"op": Op.WITHDRAW.value, "id": e.claim.id})
            continue
        if e.op is Op.CERTIFY:
            out.append({"op": Op.CERTIFY.value, "id": e.claim.id, "root": e.root})
            continue
        item: dict[str, Any] = {"op": Op.CLAIM.value, "id": e.claim.id}
        if e.claim.ref is not None:
            item["ref"] = e.claim.ref
        if e.claim.is_trip:
            item |= {
                "citizen": e.claim.citizen,
                "start_ms": e.claim.start_ms,
                "end_ms": e.claim.end_ms,
            }
        out.append(item)
    document = {
        "protocol": PROTOCOL,
        "registry": registry,
        "node": node,
        "batch": number,
        "events": out,
        "tallies": dict(sorted(tallies.items())),
    }
    moved = [_units_item(u) for u in units]
    if moved:
        document["units"] = moved
    versions = [{"ref": ref, "fingerprint": fp} for ref, fp in methodologies]
    if versions:
        document["methodologies"] = versions
    return document


def parse_methodologies(items: object) -> list[tuple[str, str]]:
    """A batch's methodology versions, checked field by field.

    Raises:
        FederationError: naming the item and the field that is wrong.
    """
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_EVENTS:
        raise FederationError(f"methodologies: a list of at most {MAX_EVENTS} expected")
    out = []
    for i, item in enumerate(items):
        where = f"methodologies[{i}]"
        if not isinstance(item, dict) or set(item) != {"ref", "fingerprint"}:
            raise FederationError(f"{where}: an object of ref and fingerprint expected")
        ref = item["ref"]
        if not isinstance(ref, str) or not 3 <= len(ref) <= 96 or ref.count("@") != 1:
            raise FederationError(f"{where}.ref: id@version expected")
        out.append((ref, _hex(item["fingerprint"], f"{where}.fingerprint", 64)))
    if len({ref for ref, _ in out}) != len(out):
        raise FederationError("methodologies: a version appears twice in one batch")
    return out


def _units_item(u: Issued | Send) -> dict[str, Any]:
    if isinstance(u, Issued):
        return {"op": "issue", **u._asdict()}
    return {"op": "send", **u._asdict()}


_HEX = frozenset("0123456789abcdef")


def is_hex(value: object, length: int) -> bool:
    """Whether a value is `length` lowercase hex characters (a key, a digest, a claim id)."""
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _hex(value: object, where: str, length: int) -> str:
    if not is_hex(value, length):
        raise FederationError(f"{where}: {length} lowercase hex characters expected")
    assert isinstance(value, str)
    return value


def _ms(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise FederationError(f"{where}: an integer of epoch milliseconds expected")
    return value


def node_code(value: object, where: str = "node") -> str:
    """A node's code: 2 to 16 capital letters or digits (the exchange's code: BJ, SH, GZ…)."""
    if not isinstance(value, str) or not 2 <= len(value) <= 16 or not set(value) <= NODE_CODE_CHARS:
        raise FederationError(f"{where}: 2 to 16 capital letters or digits expected")
    return value


def parse_events(items: object) -> list[Event]:
    """A batch's events, checked field by field.

    Raises:
        FederationError: naming the event and the field that is wrong.
    """
    if not isinstance(items, list):
        raise FederationError("events: a list expected")
    if len(items) > MAX_EVENTS:
        raise FederationError(f"events: at most {MAX_EVENTS} in one batch")
    events: list[Event] = []
    for i, item in enumerate(items):
        where = f"events[{i}]"
        if not isinstance(item, dict):
            raise FederationError(f"{where}: an object expected")
        op = item.get("op")
        cid = _hex(item.get("id"), f"{where}.id", 40)
        if op == Op.WITHDRAW.value:
            if set(item) != {"op", "id"}:
                raise FederationError(f"{where}: a withdrawal has only op and id")
            events.append(Event(Op.WITHDRAW, Claim(cid, None, None, None, None)))
            continue
        if op == Op.CERTIFY.value:
            if set(item) != {"op", "id", "root"}:
                raise FederationError(f"{where}: a certification has only op, id and root")
            root = _hex(item["root"], f"{where}.root", 64)
            events.append(Event(Op.CERTIFY, Claim(cid, None, None, None, None), root))
            continue
        if op != Op.CLAIM.value:
            raise FederationError(f"{where}.op: claim, withdraw or certify expected")
        unknown = set(item) - {"op", "id", "ref", "citizen", "start_ms", "end_ms"}
        if unknown:
            raise FederationError(f"{where}: unknown fields {sorted(unknown)}")
        ref = None if "ref" not in item else _hex(item["ref"], f"{where}.ref", 64)
        trip_fields = {"citizen", "start_ms", "end_ms"} & set(item)
        if trip_fields and trip_fields != {"citizen", "start_ms", "end_ms"}:
            raise FederationError(f"{where}: a trip has citizen, start_ms and end_ms together")
        citizen = start = end = None
        if trip_fields:
            citizen = _hex(item["citizen"], f"{where}.citizen", 64)
            start = _ms(item["start_ms"], f"{where}.start_ms")
            end = _ms(item["end_ms"], f"{where}.end_ms")
            if not start < end <= start + LONGEST_TRIP_MS:
                raise FederationError(f"{where}: a trip ends after it starts, within a day")
        if ref is None and citizen is None:
            raise FederationError(f"{where}: a claim has a ref, a trip, or both")
        events.append(Event(Op.CLAIM, Claim(cid, ref, citizen, start, end)))
    ids = [e.claim.id for e in events if e.op is Op.CLAIM]
    if len(set(ids)) != len(ids):
        raise FederationError("events: a claim appears twice in one batch")
    return events


_UNIT_FIELDS = {
    "issue": frozenset(Issued._fields) | {"op"},
    "send": frozenset(Send._fields) | {"op"},
}


def _serials(item: Mapping[str, Any], where: str) -> tuple[int, int]:
    first, last = item["first"], item["last"]
    for name, value in (("first", first), ("last", last)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**53:
            raise FederationError(f"{where}.{name}: a serial number from 1 expected")
    if last < first:
        raise FederationError(f"{where}: a range of units ends after it starts")
    return first, last


def parse_units(node: str, items: object) -> list[Issued | Send]:
    """A batch's batches of units issued and units sent, checked field by field.

    Raises:
        FederationError: naming the item and the field that is wrong.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise FederationError("units: a list expected")
    if len(items) > MAX_EVENTS:
        raise FederationError(f"units: at most {MAX_EVENTS} in one batch")
    out: list[Issued | Send] = []
    for i, item in enumerate(items):
        where = f"units[{i}]"
        if not isinstance(item, dict):
            raise FederationError(f"{where}: an object expected")
        op = item.get("op")
        if op not in _UNIT_FIELDS:
            raise FederationError(f"{where}.op: issue or send expected")
        if set(item) != _UNIT_FIELDS[op]:
            raise FederationError(f"{where}: {op} has the fields {sorted(_UNIT_FIELDS[op])}")
        first, last = _serials(item, where)
        origin = node_code(item["origin"], f"{where}.origin")
        root = _hex(item["root"], f"{where}.root", 64)
        if op == "issue":
            if origin != node:
                raise FederationError(f"{where}.origin: a node issues its own batches only")
            methodology = item["methodology"]
            if not isinstance(methodology, str) or not 3 <= len(methodology) <= 96:
                raise FederationError(f"{where}.methodology: id@version expected")
            if "@" not in methodology:
                raise FederationError(f"{where}.methodology: id@version expected")
            region, vintage = item["region"], item["vintage"]
            if not isinstance(region, str) or market.region_refused(region):
                raise FederationError(f"{where}.region: a code of 2, 4 or 6 digits expected")
            if not isinstance(vintage, str) or market.period_refused(vintage):
                raise FederationError(f"{where}.vintage: a month YYYY-MM expected")
            out.append(Issued(origin, root, methodology, region, vintage, first, last))
            continue
        transfer = item["transfer"]
        if isinstance(transfer, bool) or not isinstance(transfer, int) or not 1 <= transfer < 2**53:
            raise FederationError(f"{where}.transfer: a number from 1 expected")
        to = node_code(item["to"], f"{where}.to")
        company, name = item["company"], item["name"]
        if not isinstance(company, str) or market.uscc_refused(company):
            raise FederationError(f"{where}.company: a unified social credit code expected")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
            raise FederationError(f"{where}.name: a company's name of 1 to 200 characters")
        out.append(Send(transfer, origin, root, first, last, to, company, name))
    transfers = [u.transfer for u in out if isinstance(u, Send)]
    if len(set(transfers)) != len(transfers):
        raise FederationError("units: a transfer appears twice in one batch")
    return out


def answer_document(
    registry: str,
    node: str,
    number: int,
    answers: Iterable[Answer],
    withdrawn: Iterable[str],
    refused: Iterable[tuple[str, Refusal]] = (),
    units_refused: Iterable[tuple[int, UnitsRefusal]] = (),
    methodologies: Iterable[tuple[str, Recognition]] = (),
) -> dict[str, Any]:
    """The registry's answer to a batch: one answer per claim, in the batch's order, the
    withdrawals it applied, the certifications it refused (every other one is recorded), and
    the transfers of units it refused (every other one moved the units)."""
    return {
        "protocol": PROTOCOL,
        "registry": registry,
        "node": node,
        "batch": number,
        "answers": [
            {
                "id": a.id,
                "position": a.position,
                "verdict": a.verdict.value,
                **(
                    {"reasons": [r.value for r in a.reasons], "of": [a.of_node, a.of_claim]}
                    if a.verdict is Verdict.DUPLICATE
                    else {}
                ),
            }
            for a in answers
        ],
        "withdrawn": list(withdrawn),
        "refused": [[claim, reason.value] for claim, reason in refused],
        "units_refused": [[transfer, reason.value] for transfer, reason in units_refused],
        "methodologies": [[ref, verdict.value] for ref, verdict in methodologies],
    }


def parse_recognitions(document: Mapping[str, Any]) -> list[tuple[str, Recognition]]:
    """What an answer says of the batch's methodology versions.

    Raises:
        FederationError: the field is malformed.
    """
    try:
        return [(str(ref), Recognition(v)) for ref, v in document.get("methodologies") or []]
    except (TypeError, ValueError):
        raise FederationError("methodologies: [ref, verdict] pairs expected") from None


def parse_units_refused(document: Mapping[str, Any]) -> list[tuple[int, UnitsRefusal]]:
    """The transfers of units an answer refuses, with why.

    Raises:
        FederationError: the field is malformed.
    """
    items = document.get("units_refused") or []
    out = []
    try:
        for transfer, reason in items:
            if isinstance(transfer, bool) or not isinstance(transfer, int):
                raise FederationError("units_refused: transfer numbers expected")
            out.append((transfer, UnitsRefusal(reason)))
    except (TypeError, ValueError):
        raise FederationError("units_refused: [transfer, reason] pairs expected") from None
    return out


# The inbox: what other nodes sent a node -----------------------------------------------------

# How far a node's request for its inbox may be from the registry's clock.
INBOX_SKEW_MS = 300_000
# The most transfers one answer lists.
INBOX_PAGE = 1_000


class Incoming(NamedTuple):
    """Units another node sent this node, as the registry moved them: the registry's number
    for the move (the inbox is read after the last one applied), the sender, the batch, the
    range and the receiving company."""

    number: int
    sender: str
    batch: Issued
    first: int
    last: int
    company: str
    name: str


def inbox_request(registry: str, node: str, after: int, at_ms: int, oversight: bool) -> bytes:
    """A node's signed request for the units sent to it after the registry's move `after` (and,
    with `oversight`, the registry's figures of every node)."""
    return canonical(
        {
            "protocol": PROTOCOL,
            "registry": registry,
            "node": node,
            "inbox_after": after,
            "at_ms": at_ms,
            "oversight": oversight,
        }
    )


def parse_inbox_request(
    body: Mapping[str, Any], registry: str, now_ms: int
) -> tuple[str, int, bool]:
    """(node, after, oversight) of an inbox request.

    Raises:
        FederationError: a field is missing or wrong, or the request is stale.
    """
    if body.get("protocol") != PROTOCOL:
        raise FederationError(f"protocol: {PROTOCOL} expected")
    if body.get("registry") != registry:
        raise FederationError("registry: the request is for another registry")
    node = node_code(body.get("node"))
    after = _ms(body.get("inbox_after"), "inbox_after")
    at = _ms(body.get("at_ms"), "at_ms")
    if abs(at - now_ms) > INBOX_SKEW_MS:
        raise FederationError("at_ms: more than 300 s from the registry's clock")
    oversight = body.get("oversight")
    if not isinstance(oversight, bool):
        raise FederationError("oversight: true or false expected")
    return node, after, oversight


def inbox_document(
    registry: str,
    node: str,
    after: int,
    incoming: Iterable[Incoming],
    oversight: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The registry's answer to an inbox request: the moves to the node after `after`, oldest
    first, at most `INBOX_PAGE`; and the oversight figures when they were asked for."""
    document: dict[str, Any] = {
        "protocol": PROTOCOL,
        "registry": registry,
        "node": node,
        "inbox_after": after,
        "transfers": [
            {
                "number": i.number,
                "from": i.sender,
                "batch": i.batch._asdict(),
                "first": i.first,
                "last": i.last,
                "company": i.company,
                "name": i.name,
            }
            for i in incoming
        ],
    }
    if oversight is not None:
        document["oversight"] = dict(oversight)
    return document


def parse_inbox(document: Mapping[str, Any]) -> list[Incoming]:
    """The moves an inbox answer lists, in order.

    Raises:
        FederationError: a field is missing or wrong.
    """
    items = document.get("transfers")
    if not isinstance(items, list):
        raise FederationError("transfers: a list expected")
    out = []
    for i, item in enumerate(items):
        where = f"transfers[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("batch"), dict):
            raise FederationError(f"{where}: an object with a batch expected")
        try:
            issued, moved = parse_units(
                item["batch"].get("origin", ""),
                [
                    {"op": "issue", **item["batch"]},
                    {
                        "op": "send",
                        "transfer": item["number"],
                        "origin": item["batch"].get("origin"),
                        "root": item["batch"].get("root"),
                        "first": item["first"],
                        "last": item["last"],
                        "to": document.get("node"),
                        "company": item["company"],
                        "name": item["name"],
                    },
                ],
            )
        except KeyError as missing:
            raise FederationError(f"{where}: {missing.args[0]} expected") from None
        except FederationError as error:
            raise FederationError(f"{where}: {error}") from None
        assert isinstance(issued, Issued)
        assert isinstance(moved, Send)
        if not issued.first <= moved.first <= moved.last <= issued.last:
            raise FederationError(f"{where}: the units are not of the batch")
        out.append(
            Incoming(
                moved.transfer,
                node_code(item.get("from"), f"{where}.from"),
                issued,
                moved.first,
                moved.last,
                moved.company,
                moved.name,
            )
        )
    return out


def parse_answers(document: Mapping[str, Any]) -> list[Answer]:
    """The answers of a registry's answer document.

    Raises:
        FederationError: a field is missing or wrong.
    """
    items = document.get("answers")
    if not isinstance(items, list):
        raise FederationError("answers: a list expected")
    out = []
    for i, a in enumerate(items):
        where = f"answers[{i}]"
        if not isinstance(a, dict):
            raise FederationError(f"{where}: an object expected")
        verdict = a.get("verdict")
        position = _ms(a.get("position"), f"{where}.position")
        cid = _hex(a.get("id"), f"{where}.id", 40)
        if verdict == Verdict.FIRST.value:
            out.append(Answer(cid, position, Verdict.FIRST))
            continue
        if verdict != Verdict.DUPLICATE.value:
            raise FederationError(f"{where}.verdict: first or duplicate expected")
        of = a.get("of")
        reasons = a.get("reasons")
        if not (isinstance(of, list) and len(of) == 2 and isinstance(reasons, list)):
            raise FederationError(f"{where}: a duplicate names its reasons and the claim it is of")
        try:
            parsed = tuple(Reason(r) for r in reasons)
        except ValueError:
            raise FederationError(f"{where}.reasons: duplicate_ref or duplicate_overlap") from None
        out.append(
            Answer(
                cid,
                position,
                Verdict.DUPLICATE,
                parsed,
                node_code(of[0], f"{where}.of[0]"),
                _hex(of[1], f"{where}.of[1]", 40),
            )
        )
    return out
