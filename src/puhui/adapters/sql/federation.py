"""The common mechanism on SQL (`domain.federation`): a node's link, outbox, claims, units sent
and methodology versions registered; the registry's nodes, batches, claims in global order,
custody of units with the moves between nodes, and the shared methodology catalogue."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text
from sqlalchemy.exc import IntegrityError

from puhui.adapters.sql import market
from puhui.adapters.sql import tables as t
from puhui.domain.errors import NotFoundError, RefusedError
from puhui.domain.federation import (
    Answer,
    Claim,
    Custody,
    Event,
    Incoming,
    Issued,
    Link,
    Op,
    Outgoing,
    Recognition,
    Refusal,
    Register,
    Registered,
    Send,
    SharedCatalogue,
    UnitsRefusal,
    Valid,
    certifiable,
)
from puhui.domain.rules import LONGEST_TRIP_MS

_BATCH = 500  # bound parameters per lookup
# The valid records a node registers (`domain.federation.registered`): a ref, or a trip.
_REGISTERED = "r.methodology is not null and (r.ref is not null or r.end_ms is not null)"


class SqlNodeLink:
    """A node's side, in the caller's transaction (`IntakeUnitOfWork.federation`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock(self) -> Link | None:
        """The link, locked for this transaction (a write first: one sync of a node at a time,
        whichever process runs it)."""
        self.conn.execute(text("update federation_link set next_batch = next_batch"))
        return self.link()

    def link(self) -> Link | None:
        """The link to the registry, if this node joined one."""
        row = self.conn.execute(
            text(
                "select node, url, registry_key, joined_seq, through_seq, next_batch, "
                "certified_batch, certified_position, issued_through, inbox_through "
                "from federation_link"
            )
        ).first()
        if row is None:
            return None
        node, url, key, joined, through, next_batch, batch, position, issued, inbox = row
        return Link(
            node, url, key, joined, through, next_batch, (int(batch), int(position)),
            int(issued), int(inbox),
        )  # fmt: skip

    def join(self, node: str, url: str, registry_key: str, at: datetime) -> int:
        """Join a registry: every record settled from now on is registered. Returns the first
        seq registered. Taking the record counter's row waits for the chunks settling now, so
        that each chunk is settled wholly before or wholly after the join.

        Raises:
            RefusedError: this node joined a registry already.
        """
        if self.link() is not None:
            raise RefusedError("joined", "this node has joined a registry already")
        first = self.conn.execute(
            text("update meta set value = value where key = 'next_record' returning value")
        ).scalar_one_or_none()
        joined = int(first or 1)
        self.conn.execute(
            t.federation_link.insert().values(
                id=1,
                node=node,
                url=url,
                registry_key=registry_key,
                joined_seq=joined,
                through_seq=joined - 1,
                next_batch=1,
                joined_at=at.astimezone(UTC),
            )
        )
        return joined

    def unanswered(self) -> tuple[int, bytes] | None:
        """The oldest batch sent and not answered: (number, body as signed)."""
        row = self.conn.execute(
            text(
                "select number, body from federation_outbox where answered_at is null "
                "order by number limit 1"
            )
        ).first()
        return None if row is None else (int(row[0]), row[1].encode())

    def outgoing(self, link: Link, limit: int) -> Outgoing:
        """What the next batch holds: the valid records after the last one sent (at most
        `limit`), and the claims to withdraw whose place comes before the batch's end."""
        rows = self.conn.execute(
            text(
                "select r.seq, p.code, r.record_id, r.scene, r.ref, s.pseudonym, r.start_ms, "
                "r.end_ms from records r join platforms p on p.id = r.platform_id "
                "join subjects s on s.id = r.subject_id "
                f"where r.seq > :after and {_REGISTERED} order by r.seq limit :n"
            ),
            {"after": max(link.through_seq, link.joined_seq - 1), "n": limit},
        ).all()
        records = [Valid(*r) for r in rows]
        full = len(records) == limit
        # Records settled before a decision were committed before it: when the batch is not
        # full, every record a pending withdrawal comes after is in it or was sent.
        through = records[-1].seq if records else link.through_seq
        # Rejected after they were held: records registered before, not withdrawn yet, and
        # records of this batch (registered and withdrawn in it).
        after = max(link.through_seq, link.joined_seq - 1)
        found = self.conn.execute(
            text(
                "select h.record_seq, h.decided_seq, c.record_seq from holds h "
                "left join federation_claims c on c.record_seq = h.record_seq "
                "where h.outcome = 'rejected' and ((c.record_seq is not null "
                "and c.withdrawn_in is null) or (c.record_seq is null and h.record_seq > :after)) "
                "order by h.decided_seq, h.record_seq"
            ),
            {"after": after},
        ).all()
        in_batch = {r.seq for r in records}
        withdrawals = [
            (int(seq), int(decided))
            for seq, decided, claimed in found
            if (claimed is not None or seq in in_batch)
            and (not full or int(decided) - 1 <= through)
        ]
        # Credits certified into batches of units since the last batch, in the room left; the
        # watermark is the last leaf read, with or without a claim (one statement: a batch of
        # units certified meanwhile is read next time, whole).
        room = limit - len(records) - len(withdrawals)
        certified: tuple[tuple[int, str, str], ...] = ()
        certified_through = link.certified_through
        if room > 0:
            b, p = link.certified_through
            rows = self.conn.execute(
                text(
                    "select bc.batch_id, bc.position, bc.record_seq, c.claim_id, u.root "
                    "from batch_credits bc join unit_batches u on u.id = bc.batch_id "
                    "left join federation_claims c on c.record_seq = bc.record_seq "
                    "where bc.batch_id > :b or (bc.batch_id = :b and bc.position > :p) "
                    "order by bc.batch_id, bc.position limit :n"
                ),
                {"b": b, "p": p, "n": room},
            ).all()
            certified = tuple(
                (int(seq), claim, root) for _, _, seq, claim, root in rows if claim is not None
            )
            if rows:
                certified_through = (int(rows[-1][0]), int(rows[-1][1]))
            room -= len(certified)
        # The batches of units this node issued since the last batch, then the units its
        # companies sent to other nodes (of batches registered by then), in the room left.
        issued: list[Issued] = []
        sends: list[Send] = []
        issued_through = link.issued_through
        if room > 0:
            rows = self.conn.execute(
                text(
                    "select id, exchange, root, methodology, region, vintage, first_serial, "
                    "last_serial from unit_batches where not imported and id > :after "
                    "order by id limit :n"
                ),
                {"after": link.issued_through, "n": room},
            ).all()
            issued = [Issued(*r[1:]) for r in rows]
            issued_through = int(rows[-1][0]) if rows else link.issued_through
            room -= len(issued)
        if room > 0:
            rows = self.conn.execute(
                text(
                    "select f.transfer, u.exchange, u.root, f.first, f.last, f.to_node, "
                    "f.to_company, f.to_name from federation_sends f "
                    "join unit_batches u on u.id = f.batch_id "
                    "where f.sent_in is null and (u.imported or u.id <= :issued) "
                    "order by f.transfer limit :n"
                ),
                {"issued": issued_through, "n": room},
            ).all()
            sends = [Send(*r) for r in rows]
        return Outgoing(
            records, withdrawals, through, certified, certified_through, tuple(issued),
            issued_through, tuple(sends),
        )  # fmt: skip

    def store_batch(
        self,
        number: int,
        body: bytes,
        claims: Sequence[tuple[int, str]],
        withdrawn: Sequence[int],
        out: Outgoing,
        at: datetime,
    ) -> None:
        """Keep a batch as it will be signed and sent, with its claims and withdrawals, and
        what it takes the node through."""
        at = at.astimezone(UTC)
        self.conn.execute(
            t.federation_outbox.insert().values(
                number=number,
                body=body.decode(),
                events=len(claims)
                + len(withdrawn)
                + len(out.certified)
                + len(out.issued)
                + len(out.sends),
                created_at=at,
            )
        )
        if claims:
            self.conn.execute(
                t.federation_claims.insert(),
                [{"record_seq": s, "claim_id": c, "batch": number} for s, c in claims],
            )
        if withdrawn:
            self.conn.execute(
                text(
                    "update federation_claims set withdrawn_in = :n "
                    "where record_seq = :s and withdrawn_in is null"
                ),
                [{"n": number, "s": s} for s in withdrawn],
            )
        self.conn.execute(
            text(
                "update federation_link set through_seq = :through, next_batch = :next, "
                "certified_batch = :cb, certified_position = :cp, issued_through = :issued"
            ),
            {
                "through": out.through_seq,
                "next": number + 1,
                "cb": out.certified_through[0],
                "cp": out.certified_through[1],
                "issued": out.issued_through,
            },
        )
        if out.sends:
            self.conn.execute(
                text("update federation_sends set sent_in = :n where transfer = :t"),
                [{"n": number, "t": s.transfer} for s in out.sends],
            )

    def methodologies_to_register(
        self, versions: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The versions ((id@version, fingerprint)) this node computes with and has not
        registered yet (a version whose definition changed is registered again)."""
        known = set(
            self.conn.execute(text("select ref, fingerprint from federation_methodologies")).all()
        )
        return [(ref, fp) for ref, fp in versions if (ref, fp) not in known]

    def store_methodologies(self, number: int, versions: Sequence[tuple[str, str]]) -> None:
        """Keep the versions a batch registers."""
        if versions:
            self.conn.execute(
                t.federation_methodologies.insert(),
                [{"ref": ref, "fingerprint": fp, "batch": number} for ref, fp in versions],
            )

    def recognitions(self, number: int, verdicts: Sequence[tuple[str, str]]) -> None:
        """What the registry said of the versions a batch registered."""
        if verdicts:
            self.conn.execute(
                text(
                    "update federation_methodologies set verdict = :v where ref = :r and batch = :n"
                ),
                [{"v": v, "r": ref, "n": number} for ref, v in verdicts],
            )

    def units_refused(self, refused: Sequence[tuple[int, str]], at: datetime) -> int:
        """Give back the units of the transfers the registry refused to their companies
        (`adapters.sql.market.return_units`); the units returned."""
        return sum(market.return_units(self.conn, n, reason, at) for n, reason in refused)

    def received(
        self,
        incoming: Sequence[Incoming],
        oversight: dict[str, Any] | None,
        at: datetime,
    ) -> int:
        """Apply what the registry's inbox lists after the last move received: the units other
        nodes sent (`adapters.sql.market.import_units`), the registry's figures when it gave
        them. Returns the units received."""
        link = self.link()
        assert link is not None
        fresh = [i for i in incoming if i.number > link.inbox_through]
        units = market.import_units(self.conn, link.node, fresh, at)
        if fresh:
            self.conn.execute(
                text("update federation_link set inbox_through = :n"), {"n": fresh[-1].number}
            )
        if oversight is not None:
            self.conn.execute(
                text("update federation_link set oversight = :o, oversight_at = :at").bindparams(
                    bindparam("at", type_=t.federation_link.c.oversight_at.type)
                ),
                {"o": json.dumps(oversight, sort_keys=True, default=str), "at": at},
            )
        return units

    def oversight(self) -> tuple[dict[str, Any], datetime] | None:
        """The registry's figures as last received, and when."""
        link = t.federation_link.c
        row = self.conn.execute(select(link.oversight, link.oversight_at)).first()
        if row is None or row[0] is None:
            return None
        return json.loads(row[0]), row[1]

    def store_watermark(self, out: Outgoing) -> None:
        """Take the node through certified credits that carry no claim (nothing to send)."""
        self.conn.execute(
            text("update federation_link set certified_batch = :cb, certified_position = :cp"),
            {"cb": out.certified_through[0], "cp": out.certified_through[1]},
        )

    def claims_of(self, ids: Iterable[str]) -> dict[str, int]:
        """The record seq of each of these claim ids."""
        wanted = sorted(set(ids))
        found: dict[str, int] = {}
        for i in range(0, len(wanted), _BATCH):
            part = wanted[i : i + _BATCH]
            rows = self.conn.execute(
                text(
                    "select claim_id, record_seq from federation_claims where claim_id in :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": part},
            ).all()
            found.update({c: int(s) for c, s in rows})
        return found

    def claim_ids(self, seqs: Iterable[int]) -> dict[int, str]:
        """The claim id of each of these records, where it has one."""
        wanted = sorted(set(seqs))
        found: dict[int, str] = {}
        for i in range(0, len(wanted), _BATCH):
            rows = self.conn.execute(
                text(
                    "select record_seq, claim_id from federation_claims where record_seq in :s"
                ).bindparams(bindparam("s", expanding=True)),
                {"s": wanted[i : i + _BATCH]},
            ).all()
            found.update({int(s): c for s, c in rows})
        return found

    def answered(self, number: int, answer: bytes, signature: str, at: datetime) -> bool:
        """Record the registry's answer to a batch (a write first, so that one process applies
        it); False when the batch was answered already (nothing is changed)."""
        done = self.conn.execute(
            text(
                "update federation_outbox set answered_at = :at, answer = :answer, "
                "signature = :sig where number = :n and answered_at is null"
            ).bindparams(bindparam("at", type_=t.federation_outbox.c.answered_at.type)),
            {"at": at.astimezone(UTC), "answer": answer.decode(), "sig": signature, "n": number},
        ).rowcount
        return bool(done)

    def verdicts(self, verdicts: Sequence[tuple[int, Answer]]) -> None:
        """Record the registry's verdict on each record's claim."""
        if verdicts:
            self.conn.execute(
                text(
                    "update federation_claims set position = :position, verdict = :verdict, "
                    "reasons = :reasons, of_node = :of_node, of_claim = :of_claim "
                    "where record_seq = :seq"
                ),
                [
                    {
                        "seq": seq,
                        "position": a.position,
                        "verdict": a.verdict.value,
                        "reasons": ";".join(a.reasons),
                        "of_node": a.of_node,
                        "of_claim": a.of_claim,
                    }
                    for seq, a in verdicts
                ],
            )

    def certifications(self, accepted: Sequence[str], refused: Sequence[tuple[str, str]]) -> None:
        """What the registry said of the certifications of a batch: each accepted one counted
        on its claim, each refused one's reason kept (shown by `status`)."""
        if accepted:
            self.conn.execute(
                text("update federation_claims set certified = certified + 1 where claim_id = :c"),
                [{"c": c} for c in accepted],
            )
        if refused:
            self.conn.execute(
                text("update federation_claims set certify_refused = :r where claim_id = :c"),
                [{"c": c, "r": r} for c, r in refused],
            )

    def update_hold_reasons(self, reasons: Sequence[tuple[int, str]]) -> None:
        """What held records still wait for, once the registry answered `first` (their receipt's
        reason and their hold row's reasons; `capped` kept on the receipt)."""
        for seq, rest in reasons:
            self.conn.execute(
                text("update holds set reasons = :r where record_seq = :s and decided_at is null"),
                {"r": rest, "s": seq},
            )
            capped = self.conn.execute(
                text("select reason from records where seq = :s and status = 'held'"), {"s": seq}
            ).scalar_one_or_none()
            if capped is None:
                continue
            keep = ";capped" if "capped" in capped.split(";") else ""
            self.conn.execute(
                text("update records set reason = :r where seq = :s and status = 'held'"),
                {"r": rest + keep, "s": seq},
            )

    def status(self) -> dict[str, Any]:
        """What the link has done: batches sent and answered, claims by verdict, records and
        withdrawals waiting to be sent."""
        link = self.link()
        if link is None:
            return {"joined": False}
        batches = self.conn.execute(
            text("select count(*), count(answered_at), max(answered_at) from federation_outbox")
        ).one()
        verdicts: dict[str, int] = dict(
            self.conn.execute(
                text(
                    "select coalesce(verdict, 'unanswered'), count(*) from federation_claims "
                    "group by coalesce(verdict, 'unanswered')"
                )
            ).all()
        )
        waiting = self.conn.execute(
            text(f"select count(*) from records r where r.seq > :after and {_REGISTERED}"),
            {"after": max(link.through_seq, link.joined_seq - 1)},
        ).scalar_one()
        held = self.conn.execute(
            text(
                "select count(*) from holds where decided_at is null "
                "and reasons like '%awaiting_registry%'"
            )
        ).scalar_one()
        certified = self.conn.execute(
            text(
                "select sum(case when certified > 0 then 1 else 0 end), "
                "count(certify_refused) from federation_claims"
            )
        ).one()
        sends = self.conn.execute(
            text(
                "select coalesce(sum(case when sent_in is null then last - first + 1 end), 0), "
                "coalesce(sum(case when sent_in is not null and refused is null "
                "then last - first + 1 end), 0), "
                "coalesce(sum(case when refused is not null then last - first + 1 end), 0) "
                "from federation_sends"
            )
        ).one()
        versions = self.conn.execute(
            text(
                "select ref, coalesce(verdict, 'unanswered') from federation_methodologies "
                "order by ref, batch"
            )
        )
        return {
            "joined": True,
            "node": link.node,
            "registry": link.url,
            "registry_key": link.registry_key,
            "joined_seq": link.joined_seq,
            "through_seq": link.through_seq,
            "batches_sent": int(batches[0]),
            "batches_answered": int(batches[1]),
            "last_answer_at": batches[2],
            "claims": {str(k): int(v) for k, v in verdicts.items()},
            "records_to_send": int(waiting),
            "held_awaiting_registry": int(held),
            "claims_certified": int(certified[0] or 0),
            "certifications_refused": int(certified[1] or 0),
            "units_to_send": int(sends[0]),
            "units_sent": int(sends[1]),
            "units_returned": int(sends[2]),
            "inbox_through": link.inbox_through,
            "methodologies": {str(ref): str(verdict) for ref, verdict in versions.all()},
        }


@dataclass(frozen=True)
class Node:
    """A member node as the registry knows it."""

    code: str
    name: str
    public_key: str
    fingerprint: str
    next_batch: int


class SqlCommonRegistry:
    """The registry's side: each batch registered in one transaction, in one global order."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_node(
        self, code: str, name: str, public_key: str, fingerprint: str, at: datetime
    ) -> None:
        """Enrol a node.

        Raises:
            RefusedError: a node of this code is enrolled already.
        """
        with self.engine.begin() as conn:
            try:
                conn.execute(
                    t.common_nodes.insert().values(
                        code=code,
                        name=name,
                        public_key=public_key,
                        fingerprint=fingerprint,
                        added_at=at.astimezone(UTC),
                    )
                )
            except IntegrityError:
                raise RefusedError("enrolled", f"node {code} is enrolled already") from None

    def node(self, code: str) -> Node | None:
        """An enrolled node."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "select code, name, public_key, fingerprint, next_batch from common_nodes "
                    "where code = :c"
                ),
                {"c": code},
            ).first()
        return None if row is None else Node(*row)

    def nodes(self) -> list[dict[str, Any]]:
        """Every node with what it registered: claims, first, duplicates, withdrawn, the
        batches it sent, when it was last seen and its latest tallies."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select n.code, n.name, n.next_batch - 1, n.seen_at, n.tallies, "
                    "count(c.position), "
                    "sum(case when c.verdict = 'first' then 1 else 0 end), "
                    "sum(case when c.verdict = 'duplicate' then 1 else 0 end), "
                    "sum(case when c.withdrawn_at is not null then 1 else 0 end) "
                    "from common_nodes n left join common_claims c on c.node = n.code "
                    "group by n.code, n.name, n.next_batch, n.seen_at, n.tallies order by n.code"
                )
            ).all()
        return [
            {
                "code": code,
                "name": name,
                "batches": int(batches),
                "seen_at": seen,
                "tallies": json.loads(tallies or "{}"),
                "claims": int(claims or 0),
                "first": int(first or 0),
                "duplicates": int(dups or 0),
                "withdrawn": int(withdrawn or 0),
            }
            for code, name, batches, seen, tallies, claims, first, dups, withdrawn in rows
        ]

    def duplicates_between(self) -> list[tuple[str, str, int]]:
        """How many claims of each node duplicate a claim first registered by another node:
        (node, of node, claims)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select c.node, f.node, count(*) from common_claims c "
                    "join common_claims f on f.position = c.of_position "
                    "where c.verdict = 'duplicate' and f.node <> c.node "
                    "group by c.node, f.node order by c.node, f.node"
                )
            ).all()
        return [(a, b, int(n)) for a, b, n in rows]

    def inbox(self, node: str, after: int, limit: int) -> list[Incoming]:
        """The units moved to a node's registry after the registry's move `after`, oldest
        first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select x.number, x.sender, b.origin, b.root, b.methodology, b.region, "
                    "b.vintage, b.first, b.last, x.first, x.last, x.company, x.name "
                    "from common_transfers x join common_unit_batches b "
                    "on b.origin = x.origin and b.root = x.root "
                    "where x.to_node = :n and x.number > :after order by x.number limit :limit"
                ),
                {"n": node, "after": after, "limit": limit},
            ).all()
        return [
            Incoming(
                int(r[0]),
                r[1],
                Issued(r[2], r[3], r[4], r[5], r[6], int(r[7]), int(r[8])),
                int(r[9]),
                int(r[10]),
                r[11],
                r[12],
            )
            for r in rows
        ]

    def catalogue(self) -> list[dict[str, Any]]:
        """The shared methodology catalogue: each version, its fingerprint, the node that added
        it, the nodes that compute with it alike and those whose definition differs."""
        with self.engine.connect() as conn:
            versions = conn.execute(
                text("select ref, fingerprint, node from common_methodologies order by ref")
            ).all()
            nodes = conn.execute(
                text(
                    "select ref, node, verdict from common_methodology_nodes "
                    "order by ref, node, batch"
                )
            ).all()
        latest: dict[tuple[str, str], str] = {}
        for ref, node, verdict in nodes:
            latest[(ref, node)] = verdict  # a node's latest registration of the version
        return [
            {
                "ref": ref,
                "fingerprint": fp,
                "added_by": by,
                "nodes": sorted(n for (r, n), v in latest.items() if r == ref and v != "differs"),
                "differs": sorted(n for (r, n), v in latest.items() if r == ref and v == "differs"),
            }
            for ref, fp, by in versions
        ]

    def units_between(self) -> list[dict[str, Any]]:
        """Per node: the units of its batches registered, those in its registry now, and the
        units it sent to and received from other nodes."""
        queries = {
            "issued": "select origin, sum(last - first + 1) from common_unit_batches "
            "group by origin",
            "held": "select node, sum(last - first + 1) from common_unit_blocks group by node",
            "sent": "select sender, sum(last - first + 1) from common_transfers group by sender",
            "received": "select to_node, sum(last - first + 1) from common_transfers "
            "group by to_node",
        }
        figures: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for name, sql in queries.items():
                figures[name] = {str(c): int(n or 0) for c, n in conn.execute(text(sql)).all()}
        codes = sorted({c for by_node in figures.values() for c in by_node})
        return [{"node": c} | {k: v.get(c, 0) for k, v in figures.items()} for c in codes]

    def order(self) -> list[tuple[int, str, str, str, int | None]]:
        """Every claim in global order: (position, node, claim id, verdict, withdrawn at)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select position, node, claim_id, verdict, withdrawn_at from common_claims "
                    "order by position"
                )
            ).all()
        return [(int(p), n, c, v, None if w is None else int(w)) for p, n, c, v, w in rows]

    def register(
        self,
        node: str,
        number: int,
        digest: str,
        events: Sequence[Event],
        tallies: dict[str, int],
        answer: Callable[
            [
                list[Answer],
                list[str],
                list[tuple[str, Refusal]],
                list[tuple[int, UnitsRefusal]],
                list[tuple[str, Recognition]],
            ],
            tuple[bytes, str],
        ],
        at: datetime,
        units: Sequence[Issued | Send] = (),
        methodologies: Sequence[tuple[str, str]] = (),
    ) -> tuple[bytes, str]:
        """Register a node's batch in one transaction: its claims judged in global order after
        every claim registered before (`domain.federation.Register`), its withdrawals applied,
        its batches of units registered and its units moved to other nodes' registries
        (`domain.federation.Custody`), and the answer (built and signed by `answer`) kept with
        it. A batch sent again is answered as it was.

        Raises:
            NotFoundError: the node is not enrolled.
            RefusedError: another batch of this number was registered (`batch_conflict`), or
                the batch is not the next one (`batch_out_of_order`, saying which is), or a
                claim of it was registered before.
        """
        at = at.astimezone(UTC)
        with self.engine.begin() as conn:
            # A write first: the global order is taken under the registry's write lock.
            seen = conn.execute(
                text("update common_nodes set seen_at = :at where code = :c").bindparams(
                    bindparam("at", type_=t.common_nodes.c.seen_at.type)
                ),
                {"at": at, "c": node},
            ).rowcount
            if not seen:
                raise NotFoundError(f"node {node} is not enrolled at this registry")
            if conn.dialect.name == "postgresql":
                conn.execute(text("lock table common_claims in share row exclusive mode"))
            before = conn.execute(
                text(
                    "select digest, answer, signature from common_batches "
                    "where node = :n and number = :b"
                ),
                {"n": node, "b": number},
            ).first()
            if before is not None:
                if before[0] != digest:
                    raise RefusedError(
                        "batch_conflict",
                        f"batch {number} of {node} was registered with other content",
                    )
                # Sent again (its answer was lost): answered as it was; nothing else changes.
                return before[1].encode(), before[2]
            expected = conn.execute(
                text("select next_batch from common_nodes where code = :c"), {"c": node}
            ).scalar_one()
            if number != expected:
                raise RefusedError(
                    "batch_out_of_order", f"batch {number} of {node}; expected {expected}"
                )
            book = Register.of(
                _live(conn, node, events),
                int(
                    conn.execute(
                        text("select coalesce(max(position), 0) + 1 from common_claims")
                    ).scalar_one()
                ),
            )
            answers: list[Answer] = []
            withdrawn: list[str] = []
            refused: list[tuple[str, Refusal]] = []
            certified: list[dict[str, Any]] = []
            rows: dict[str, dict[str, Any]] = {}
            stopped: list[dict[str, Any]] = []
            for e in events:
                if e.op is Op.CERTIFY:
                    why = certifiable(book, node, e.claim.id)
                    if why is None:
                        certified.append(
                            {"node": node, "claim_id": e.claim.id, "root": e.root, "batch": number}
                        )
                    else:
                        refused.append((e.claim.id, why))
                    continue
                if e.op is Op.WITHDRAW:
                    at_position = book.withdraw(node, e.claim.id)
                    if at_position is None:
                        continue
                    withdrawn.append(e.claim.id)
                    if e.claim.id in rows:
                        rows[e.claim.id]["withdrawn_at"] = at_position
                    else:
                        stopped.append({"n": node, "c": e.claim.id, "w": at_position})
                    continue
                a = book.register(node, e.claim)
                answers.append(a)
                rows[e.claim.id] = {
                    "position": a.position,
                    "node": node,
                    "claim_id": a.id,
                    "batch": number,
                    "ref": e.claim.ref,
                    "citizen": e.claim.citizen,
                    "start_ms": e.claim.start_ms,
                    "end_ms": e.claim.end_ms,
                    "verdict": a.verdict.value,
                    "reasons": ";".join(a.reasons),
                    "of_position": a.of_position,
                    "withdrawn_at": None,
                }
            try:
                if rows:
                    conn.execute(t.common_claims.insert(), list(rows.values()))
            except IntegrityError:
                raise RefusedError(
                    "claim_registered",
                    f"a claim of batch {number} of {node} was registered in an earlier batch",
                ) from None
            if stopped:
                conn.execute(
                    text(
                        "update common_claims set withdrawn_at = :w "
                        "where node = :n and claim_id = :c and withdrawn_at is null"
                    ),
                    stopped,
                )
            if certified:
                try:
                    conn.execute(t.common_certifications.insert(), certified)
                except IntegrityError:
                    raise RefusedError(
                        "certified_twice",
                        f"batch {number} of {node} certifies a claim into a batch of units "
                        "it was certified into before",
                    ) from None
            units_refused = _units(conn, node, number, units, at)
            recognised = _methodologies(conn, node, number, methodologies, at)
            body, signature = answer(answers, withdrawn, refused, units_refused, recognised)
            conn.execute(
                t.common_batches.insert().values(
                    node=node,
                    number=number,
                    digest=digest,
                    answer=body.decode(),
                    signature=signature,
                    received_at=at,
                )
            )
            conn.execute(
                text("update common_nodes set next_batch = :b, tallies = :t where code = :c"),
                {"b": number + 1, "t": json.dumps(tallies, sort_keys=True), "c": node},
            )
        return body, signature


def _methodologies(
    conn: Connection, node: str, number: int, versions: Sequence[tuple[str, str]], at: datetime
) -> list[tuple[str, Recognition]]:
    """Register a batch's methodology versions in the shared catalogue, as `SharedCatalogue`
    says, on the stored versions of those ids@versions.

    Raises:
        RefusedError: `methodology_registered`: the node registered this definition before.
    """
    if not versions:
        return []
    catalogue = SharedCatalogue()
    refs = sorted({ref for ref, _ in versions})
    for i in range(0, len(refs), _BATCH):
        for ref, fp, by in conn.execute(
            text(
                "select ref, fingerprint, node from common_methodologies where ref in :refs"
            ).bindparams(bindparam("refs", expanding=True)),
            {"refs": refs[i : i + _BATCH]},
        ).all():
            catalogue.versions[ref] = (fp, by)
    verdicts = [(ref, fp, catalogue.register(node, ref, fp)) for ref, fp in versions]
    added = [
        {"ref": ref, "fingerprint": fp, "node": node, "at": at}
        for ref, fp, v in verdicts
        if v is Recognition.ADDED
    ]
    if added:
        conn.execute(t.common_methodologies.insert(), added)
    try:
        conn.execute(
            t.common_methodology_nodes.insert(),
            [
                {"node": node, "ref": ref, "fingerprint": fp, "verdict": v.value, "batch": number}
                for ref, fp, v in verdicts
            ],
        )
    except IntegrityError:
        raise RefusedError(
            "methodology_registered",
            f"batch {number} of {node} registers a methodology version it registered before",
        ) from None
    return [(ref, v) for ref, _, v in verdicts]


def _units(
    conn: Connection, node: str, number: int, units: Sequence[Issued | Send], at: datetime
) -> list[tuple[int, UnitsRefusal]]:
    """Register a batch's batches of units and move the units it sends, as `Custody` says, on
    the stored rows of the batches of units it names; the transfers refused, with why.

    Raises:
        RefusedError: `units_registered`: a batch of units, or a transfer, registered before.
    """
    if not units:
        return []
    keys = sorted({(u.origin, u.root) for u in units})
    custody = Custody()
    for origin, root in keys:
        row = conn.execute(
            text(
                "select origin, root, methodology, region, vintage, first, last "
                "from common_unit_batches where origin = :o and root = :r"
            ),
            {"o": origin, "r": root},
        ).first()
        if row is None:
            continue
        custody.batches[(origin, root)] = Issued(*row)
        custody.blocks[(origin, root)] = [
            (int(a), int(b), n)
            for a, b, n in conn.execute(
                text(
                    "select first, last, node from common_unit_blocks "
                    "where origin = :o and root = :r order by first"
                ),
                {"o": origin, "r": root},
            ).all()
        ]
    nodes = set(conn.execute(text("select code from common_nodes")).scalars())
    refused: list[tuple[int, UnitsRefusal]] = []
    issued: list[dict[str, Any]] = []
    moved: list[Send] = []
    for u in units:
        if isinstance(u, Issued):
            if not custody.issue(u):
                raise RefusedError(
                    "units_registered", f"batch {number} of {node} issues a batch of units again"
                )
            issued.append({**u._asdict(), "batch": number})
            continue
        why = custody.send(node, u, nodes)
        if why is None:
            moved.append(u)
        else:
            refused.append((u.transfer, why))
    if issued:
        conn.execute(t.common_unit_batches.insert(), issued)
    conn.execute(
        text("delete from common_unit_blocks where origin = :o and root = :r"),
        [{"o": o, "r": r} for o, r in keys],
    )
    blocks = [
        {"origin": o, "root": r, "first": a, "last": b, "node": n}
        for (o, r), held in custody.blocks.items()
        for a, b, n in held
    ]
    if blocks:
        conn.execute(t.common_unit_blocks.insert(), blocks)
    if moved:
        start = int(
            conn.execute(
                text("select coalesce(max(number), 0) + 1 from common_transfers")
            ).scalar_one()
        )
        try:
            conn.execute(
                t.common_transfers.insert(),
                [
                    {
                        "number": start + i, "sender": node, "transfer": s.transfer,
                        "origin": s.origin, "root": s.root, "first": s.first, "last": s.last,
                        "to_node": s.to, "company": s.company, "name": s.name, "batch": number,
                        "at": at,
                    }
                    for i, s in enumerate(moved)
                ],
            )  # fmt: skip
        except IntegrityError:
            raise RefusedError(
                "units_registered", f"batch {number} of {node} sends a transfer sent before"
            ) from None
    return refused


def _live(conn: Connection, node: str, events: Sequence[Event]) -> list[Registered]:
    """The stored live claims a batch's events can meet: those of its refs, its citizens' trips
    that could overlap its trips, and the node's own claims it withdraws."""
    claims = [e.claim for e in events if e.op is Op.CLAIM]
    columns = "position, node, claim_id, ref, citizen, start_ms, end_ms, verdict"
    found: dict[int, Registered] = {}

    def keep(rows: Iterable[Any]) -> None:
        for p, n, c, ref, citizen, start, end, verdict in rows:
            found[int(p)] = Registered(
                int(p), n, Claim(c, ref, citizen, start, end), verdict == "first"
            )

    refs = sorted({c.ref for c in claims if c.ref is not None})
    for i in range(0, len(refs), _BATCH):
        keep(
            conn.execute(
                text(
                    f"select {columns} from common_claims where withdrawn_at is null "
                    "and ref in :refs"
                ).bindparams(bindparam("refs", expanding=True)),
                {"refs": refs[i : i + _BATCH]},
            ).all()
        )
    spans: dict[str, tuple[int, int]] = {}
    for c in claims:
        if c.is_trip and c.citizen is not None:
            lo, hi = spans.get(c.citizen, (c.start_ms or 0, c.end_ms or 0))
            spans[c.citizen] = (min(lo, c.start_ms or 0), max(hi, c.end_ms or 0))
    keys = sorted(spans.items())
    for i in range(0, len(keys), _BATCH):
        part = keys[i : i + _BATCH]
        if conn.dialect.name == "sqlite":
            source = (
                "(select j.value ->> 0 as c, j.value ->> 1 as lo, j.value ->> 2 as hi "
                "from json_each(:keys) j) k"
            )
            params: dict[str, Any] = {
                "keys": json.dumps([[c, lo - LONGEST_TRIP_MS, hi] for c, (lo, hi) in part])
            }
        else:
            source = (
                "unnest(cast(:c as text[]), cast(:lo as bigint[]), cast(:hi as bigint[])) "
                "k (c, lo, hi)"
            )
            params = {
                "c": [c for c, _ in part],
                "lo": [lo - LONGEST_TRIP_MS for _, (lo, _) in part],
                "hi": [hi for _, (_, hi) in part],
            }
        picked = "x.position, x.node, x.claim_id, x.ref, x.citizen, x.start_ms, x.end_ms, x.verdict"
        within = "x.start_ms > k.lo and x.start_ms < k.hi and x.withdrawn_at is null"
        if conn.dialect.name == "postgresql":
            # One index range per citizen, whatever the statistics say (a join may choose to
            # scan every claim).
            sql = (
                f"select {picked} from {source} cross join lateral (select * from common_claims x "
                f"where x.citizen = k.c and {within}) x"
            )
        else:
            sql = f"select {picked} from {source} join common_claims x on x.citizen = k.c "
            sql += f"and {within}"
        keep(conn.execute(text(sql), params).all())

    # The node's own claims it withdraws or certifies.
    withdrawn = sorted({e.claim.id for e in events if e.op in (Op.WITHDRAW, Op.CERTIFY)})
    for i in range(0, len(withdrawn), _BATCH):
        keep(
            conn.execute(
                text(
                    f"select {columns} from common_claims where withdrawn_at is null "
                    "and node = :node and claim_id in :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"node": node, "ids": withdrawn[i : i + _BATCH]},
            ).all()
        )
    return list(found.values())
