"""What the common mechanism's tests share: every node's final receipts, and the receipts of one
node fed every record in the registry's order."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import text

from puhui.bootstrap import App
from puhui.service import admin, federation, ingest, queries

Outcome = dict[tuple[str, str], tuple[str, int]]


def final_receipts(apps: Mapping[str, App], platforms: Mapping[str, Sequence[str]]) -> Outcome:
    """(status, grams) of every stored record of every node, by (platform, record id); none of
    them may still be held."""
    outcome: Outcome = {}
    for code, app in apps.items():
        for platform in platforms[code]:
            for r in queries.receipts(app, platform):
                assert r["status"] != "held", r
                outcome[(platform, r["record_id"])] = (r["status"], r["reduction_g"])
    return outcome


def one_node(
    apps: Mapping[str, App],
    registry: App,
    platforms: Mapping[str, Sequence[str]],
    record_of: Callable[[str, str], dict[str, Any]],
    reference: App,
) -> Outcome:
    """The receipts of `reference`, an empty installation, fed every registered record in the
    registry's order, then the records not registered (events without a ref: nothing compares
    with them). `record_of(platform, record_id)` is the record as its platform first sent it."""
    claimed: dict[tuple[str, str], tuple[str, str]] = {}
    stored: set[tuple[str, str]] = set()
    for code, app in apps.items():
        with app.engine.connect() as conn:
            for claim, platform, record_id in conn.execute(
                text(
                    "select c.claim_id, p.code, r.record_id from federation_claims c "
                    "join records r on r.seq = c.record_seq "
                    "join platforms p on p.id = r.platform_id"
                )
            ):
                claimed[(code, claim)] = (platform, record_id)
        for platform in platforms[code]:
            stored |= {(platform, r["record_id"]) for r in queries.receipts(app, platform)}
    for codes in platforms.values():
        for p in codes:
            admin.add_platform(reference, p)
    registered = set()
    for _position, node, claim, _verdict, _withdrawn in federation.registry(registry).order():
        platform, record_id = claimed[(node, claim)]
        ingest.ingest_records(reference, platform, [record_of(platform, record_id)])
        registered.add((platform, record_id))
    for platform, record_id in sorted(stored - registered):
        record = record_of(platform, record_id)
        assert "end" not in record
        assert not record.get("ref")
        ingest.ingest_records(reference, platform, [record])
    return final_receipts({"": reference}, {"": [p for c in platforms.values() for p in c]})
