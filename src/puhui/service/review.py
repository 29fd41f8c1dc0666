"""Held records (spec v1.1) in the life of a chunk: judged after settlement, held with their
reasons and evidence, corroborated by an authority's duplicate; and, for the exchange's
operators, the review queue: its listing, their decisions and the policies' timeouts.

The rules are `domain.review`, `domain.evidence` and `domain.signals`; this module runs them
over the database through the intake store (`service.ports`), one unit of work each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from puhui.adapters.batch import signals as batch_signals
from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.domain.errors import InputError
from puhui.domain.evidence import Evidence, Need, Policy
from puhui.domain.federation import registered
from puhui.domain.reasons import Reason, Status
from puhui.domain.review import (
    Decision,
    Judged,
    Resolution,
    corroborates,
    hold_of,
    may_release,
    on_corroboration,
    on_decision,
    on_timeout,
)
from puhui.domain.settlement import Role
from puhui.domain.signals import DAY_MINUTES, SIGNALS
from puhui.service import ledger
from puhui.service.ports import IntakeStore

# How far from a chunk's records the stored records the signals compare lie, at most.
_DAY_MS = 86_400_000


@dataclass
class Reviewed:
    """A settled chunk after review: its receipts (held ones with status `held`), the hold rows
    to store with its records, and the stored held records that its records corroborate."""

    settled: pa.Table
    holds: list[tuple[Any, ...]] = field(default_factory=list)
    # (held seq, by seq, the reasons it was held for)
    corroborations: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)


def review_chunk(
    store: IntakeStore,
    con: Any,
    evidence: Evidence,
    settled: pa.Table,
    platform: str,
    platform_id: int,
    received_at: datetime,
) -> Reviewed:
    """Judge the records of a settled chunk that settlement would credit (`domain.review`).
    On a node of the common mechanism (the store has a link to a registry), every one of them
    is held awaiting the registry's answer."""
    reviewed = Reviewed(settled)
    if settled.num_rows == 0:
        return reviewed
    federated = store.federated()
    if evidence.version == "none" and not federated:
        return reviewed
    new = pc.equal(settled.column("role"), pa.scalar(Role.NEW.value))
    credited = pc.and_(new, pc.equal(settled.column("status"), Status.CREDITED.value))
    duplicate = pc.and_(new, pc.equal(settled.column("status"), Status.DUPLICATE.value))
    if evidence.version == "none":
        in_force = pa.array([False] * settled.num_rows)
    else:
        in_force = pc.greater_equal(
            settled.column("start_ms"), china_time.day_start_ms(evidence.in_force_from)
        )
    signalled = pc.fill_null(pc.and_(credited, in_force), False)
    # What the registry compares (`domain.federation.registered`): a ref, or a trip.
    registrable = pc.or_(pc.is_valid(settled.column("ref")), pc.is_valid(settled.column("end_ms")))
    waits = pc.fill_null(pc.and_(credited, registrable), False) if federated else None
    judged_mask = signalled if waits is None else pc.or_(signalled, waits)
    if pc.any(pc.and_(duplicate, in_force)).as_py():
        reviewed.corroborations = _corroborations(
            store, evidence, settled.filter(pc.fill_null(duplicate, False)), platform
        )
    if not pc.any(judged_mask).as_py():
        return reviewed
    valid = pc.fill_null(pc.or_(credited, duplicate), False)
    chunk = settled.filter(valid)
    fired: dict[int, dict[Reason, Any]] = {}
    if pc.any(signalled).as_py():
        fired = _signals(store, con, evidence, chunk, signalled.filter(valid), platform_id)
    judged = judged_mask.filter(valid)

    holds: dict[int, tuple[Reason, ...]] = {}
    rows = (
        chunk.filter(judged)
        .select(["seq", "scene", "region", "start_ms", "end_ms", "ref", "reduction_g"])
        .to_pylist()
    )
    for r in rows:
        day = china_time.day_of_ms(r["start_ms"])
        found = fired.get(r["seq"], {})
        waiting = federated and registered(r["ref"], r["start_ms"], r["end_ms"])
        hold = hold_of(
            Judged(r["seq"], platform, r["scene"], r["region"], day), evidence, found, waiting
        )
        if hold is None:
            continue
        detail = {
            code.value: {
                "measured": list(found[code]),
                "why": SIGNALS[code].explain(found[code], evidence.thresholds),
            }
            for code in hold.reasons
            if code in found
        }
        until = None
        if waiting:
            detail[Reason.AWAITING_REGISTRY.value] = {"why": _REGISTRY_WHY}
        if hold.policy is not None:
            detail[hold.reasons[0].value] = {"why": _policy_why(hold.policy)}
            if hold.policy.others is Need.CORROBORATION:
                until = received_at + timedelta(days=hold.policy.window_days)
        reviewed.holds.append(
            (
                r["seq"],
                platform_id,
                ";".join(hold.reasons),
                json.dumps(detail, ensure_ascii=False, sort_keys=True),
                None if hold.policy is None else hold.policy.id,
                r["reduction_g"],
                received_at,
                until,
            )
        )
        holds[r["seq"]] = hold.reasons
    if holds:
        reviewed.settled = _held(settled, holds)
    return reviewed


_REGISTRY_WHY = (
    "this node registers the record's claim with the common mechanism's registry, which "
    "answers whether another exchange's node received the same behaviour first"
)


def _policy_why(policy: Policy) -> str:
    """How a held record's policy reads to a reviewer."""
    if policy.others is Need.CORROBORATION:
        return (
            f"policy {policy.id}: {policy.scene} here is credited on the word of "
            f"{', '.join(sorted(policy.authorities))}; waits {policy.window_days} days for it, "
            f"then {'is rejected' if policy.on_timeout == 'reject' else 'is credited'}"
        )
    return f"policy {policy.id}: every {policy.scene} record of this platform is reviewed"


def _signals(
    store: IntakeStore,
    con: Any,
    evidence: Evidence,
    chunk: pa.Table,
    judged: pa.Array,
    platform_id: int,
) -> dict[int, dict[Reason, Any]]:
    """What the signals measure on the judged records of a chunk's valid records."""
    t = evidence.thresholds
    starts = chunk.column("start_ms")
    window = max(t.device_window_ms, t.hopping_window_ms, t.repeat_window_ms, t.max_gap_ms)
    lo = pc.min(starts).as_py() - window - _DAY_MS
    hi = pc.max(starts).as_py() + window + _DAY_MS
    raw_chunk = pa.table(
        {
            "seq": chunk.column("seq"),
            "in_chunk": pa.array([True] * chunk.num_rows),
            "judged": judged,
            "platform_id": pa.array([platform_id] * chunk.num_rows, pa.int64()),
            "citizen": chunk.column("subject_id").cast(pa.int64()),
            "device": pa.nulls(chunk.num_rows, pa.string()),
            "scene": chunk.column("scene"),
            "region": chunk.column("region"),
            "start_ms": starts,
            "end_ms": chunk.column("end_ms"),
            "amount_milli": chunk.column("amount_milli"),
            "extra": chunk.column("extra"),
        }
    )
    in_chunk = batch_signals.seen_of(con, raw_chunk)
    devices = {d for d in in_chunk.column("device").to_pylist() if d is not None}
    citizens = {c for c in in_chunk.column("citizen").to_pylist() if c is not None}
    history = store.signal_history(citizens, devices, lo, hi)
    raw_history = pa.table(
        {
            "seq": history.column("seq"),
            "in_chunk": pa.array([False] * history.num_rows, pa.bool_()),
            "judged": pa.array([False] * history.num_rows, pa.bool_()),
            "platform_id": history.column("platform_id"),
            "citizen": history.column("citizen"),
            "device": history.column("device"),
            "scene": history.column("scene"),
            "region": history.column("region"),
            "start_ms": history.column("start_ms"),
            "end_ms": history.column("end_ms"),
            "amount_milli": history.column("amount_milli"),
            "extra": history.column("extra"),
        }
    )
    seen = pa.concat_tables([in_chunk, batch_signals.seen_of(con, raw_history)])
    judged_rows = in_chunk.filter(in_chunk.column("judged"))
    keys = set(
        zip(
            judged_rows.column("region").to_pylist(),
            judged_rows.column("scene").to_pylist(),
            strict=True,
        )
    )
    minutes = pc.divide(judged_rows.column("start_ms"), 60_000)
    bursts = store.burst_history(
        platform_id,
        keys,
        (pc.min(minutes).as_py() - DAY_MINUTES) * 60_000,
        (pc.max(minutes).as_py() + 1) * 60_000,
    )
    return batch_signals.judge(con, seen, bursts, t)


def _held(settled: pa.Table, holds: dict[int, tuple[Reason, ...]]) -> pa.Table:
    """The chunk's receipts with its held records (and their replays in the chunk) held."""
    seqs = settled.column("seq").to_pylist()
    receipt = settled.column("receipt_seq").to_pylist()
    statuses = settled.column("status").to_pylist()
    reasons = settled.column("reason").to_pylist()
    for i, (seq, of) in enumerate(zip(seqs, receipt, strict=True)):
        target = seq if seq in holds else of if of in holds else None
        if target is None:
            continue
        capped = Reason.CAPPED.value in (reasons[i] or "").split(";")
        statuses[i] = Status.HELD.value
        reasons[i] = ";".join([*holds[target], *([Reason.CAPPED.value] if capped else [])])
    names = settled.schema.names
    return settled.set_column(
        names.index("status"), "status", pa.array(statuses, settled.schema.field("status").type)
    ).set_column(
        names.index("reason"), "reason", pa.array(reasons, settled.schema.field("reason").type)
    )


def _corroborations(
    store: IntakeStore, evidence: Evidence, duplicates: pa.Table, platform: str
) -> list[tuple[int, int, tuple[str, ...]]]:
    """(held seq, by seq, held for): stored held records that a duplicate of this chunk
    corroborates."""
    of = dict(
        zip(
            duplicates.column("duplicate_of").to_pylist(),
            duplicates.column("seq").to_pylist(),
            strict=True,
        )
    )
    # A duplicate names the earliest claim of its behaviour; several may name one: the first.
    first: dict[int, int] = {}
    for held, by in sorted(of.items(), key=lambda x: x[1]):
        if held is not None:
            first.setdefault(held, by)
    policies = {p.id: p for p in evidence.policies}
    return [
        (h.seq, first[h.seq], h.reasons)
        for h in store.open_holds(first)
        if Reason.AWAITING_CORROBORATION in h.reasons
        and h.corroborated_by is None
        and corroborates(policies.get(h.policy or ""), h.platform, platform)
    ]


def corroborate(
    store: IntakeStore, corroborations: Sequence[tuple[int, int, tuple[str, ...]]], at: datetime
) -> int:
    """Credit the held records an authority corroborated that waited for nothing else, and note
    the corroboration on the others; returns how many were credited."""
    ended = []
    for held, by, reasons in corroborations:
        outcome = on_corroboration(reasons)
        if outcome is None:
            store.note_corroboration(held, by)
        else:
            ended.append(Resolution(held, outcome, "corroboration", None, by))
    return len(store.resolve_holds(ended, at)) if ended else 0


def decide(
    store: IntakeStore, seqs: Sequence[int], decision: Decision, by: str, note: str, at: datetime
) -> list[int]:
    """A reviewer's decision on held records; returns the seqs it ended (others were decided
    already, or never held)."""
    if not note.strip():
        raise InputError("a decision needs a reason")
    outcome = on_decision(decision)
    if decision is Decision.RELEASE:
        waiting = {h.seq for h in store.open_holds(seqs) if not may_release(h.reasons)}
        seqs = [s for s in seqs if s not in waiting]
    return store.resolve_holds([Resolution(s, outcome, by, note.strip()) for s in seqs], at)


def expire(store: IntakeStore, evidence: Evidence, at: datetime) -> list[int]:
    """End the held records whose corroboration window is over, as their policies say."""
    policies = {p.id: p for p in evidence.policies}
    ended = []
    for h in store.expiring(at):
        policy = policies.get(h.policy or "")
        outcome = None if policy is None else on_timeout(h.reasons, policy)
        if outcome is not None:
            ended.append(Resolution(h.seq, outcome, f"policy {policy.id}" if policy else "policy"))
    return store.resolve_holds(ended, at) if ended else []


def decide_held(app: App, seqs: Sequence[int], decision: Decision, by: str, note: str) -> list[int]:
    """A reviewer's decision on held records, in one unit of work (`decide`)."""
    with app.intake() as uow:
        ended = decide(uow.store, seqs, decision, by, note, app.clock())
        uow.commit()
    ledger.seal_quietly(app)
    return ended


def expire_held(app: App, at: datetime | None = None) -> list[int]:
    """End the held records whose corroboration window is over, in one unit of work."""
    with app.intake() as uow:
        ended = expire(uow.store, app.evidence, at or app.clock())
        uow.commit()
    ledger.seal_quietly(app)
    return ended
