"""The public registry of certified units: batches with their Merkle roots, who holds which
serial numbers, retirements and their certificates, buffers' shortfalls, and the proof that a
citizen's credit is in a batch (docs/market.md).

Everything here is public except a credit's proof, which only its citizen asks for: a batch
names receipts (platform and record id) and grams, never a citizen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from puhui.bootstrap import App
from puhui.domain import market as rules
from puhui.domain.errors import InputError, NotFoundError
from puhui.service.market import retirement_certificate_id, retirement_of_certificate
from puhui.service.ports import MarketReads

PROOF_FORMAT = "puhui inclusion proof v1"


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch of certified units as the registry shows it.

    Attributes:
        held: units by holder: `exchange` (not sold yet), `company`, `buffer`, `retired`,
            `cancelled` (buffer units no longer backed after reversals).
        drawn_g, shortfall_g: what reversals of its credits drew from its buffer, and what the
            buffer could not cover.
    """

    id: int
    serial: str
    exchange: str
    methodology: str
    region: str
    vintage: str
    units: int
    buffer_units: int
    buffer_bp: int
    first: int
    last: int
    leaves: int
    root: str
    certified_at: datetime
    drawn_g: int
    shortfall_g: int
    held: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BlockView:
    """A block of consecutive units and who holds it."""

    serial: str
    batch: str
    first: int
    last: int
    units: int
    holder: str
    company: str | None
    company_name: str | None
    certificate: str | None
    node: str | None = None  # abroad: the node whose registry they went to, or are at


@dataclass(frozen=True, slots=True)
class RetirementView:
    """A retirement of units by a company, and its certificate."""

    certificate: str
    company: str
    company_name: str
    units: int
    beneficiary: str
    purpose: str
    at: datetime
    serials: list[str]


@dataclass(frozen=True, slots=True)
class CompanyView:
    """A company and its units."""

    uscc: str
    name: str
    held: int
    retired: int
    blocks: list[BlockView]


def reads(app: App) -> MarketReads:
    """The market's read side."""
    return app.market_reads()


def batches(app: App) -> list[BatchView]:
    """Every batch, oldest first."""
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for k in reads(app).blocks():
        by_batch.setdefault(int(k["batch_id"]), []).append(k)
    return [_batch(row, by_batch.get(int(row["id"]), [])) for row in reads(app).batches()]


def batch(app: App, serial_or_id: str) -> BatchView:
    """One batch, by its id, or by a serial number of it or of any of its blocks.

    Raises:
        NotFoundError: no such batch.
    """
    batch_id = _batch_id(app, serial_or_id)
    row = reads(app).batch(batch_id) if batch_id is not None else None
    if row is None:
        raise NotFoundError(f"no batch {serial_or_id}")
    return _batch(row, reads(app).blocks(batch_id))


def blocks(app: App, batch_id: int | None = None, uscc: str | None = None) -> list[BlockView]:
    """Who holds which units (of one batch, or a company's, or all), lowest numbers first."""
    found = reads(app).batches() if batch_id is None else [reads(app).batch(batch_id)]
    by_id = {b["id"]: b for b in found if b is not None}
    return [_block(app, k, by_id[k["batch_id"]]) for k in reads(app).blocks(batch_id, uscc)]


def companies(app: App) -> list[CompanyView]:
    """Every company with the units it holds and has retired."""
    by_company: dict[str, list[BlockView]] = {}
    for block in blocks(app):
        if block.company is not None:
            by_company.setdefault(block.company, []).append(block)
    return [_company(c, by_company.get(c["uscc"], [])) for c in reads(app).companies()]


def company(app: App, uscc: str) -> CompanyView:
    """One company's holdings.

    Raises:
        NotFoundError: no such company.
    """
    code = uscc.strip().upper()
    found = reads(app).company(code)
    if found is None:
        raise NotFoundError(f"no company {uscc}")
    return _company(found, blocks(app, uscc=code))


def _company(row: Mapping[str, Any], held: list[BlockView]) -> CompanyView:
    return CompanyView(row["uscc"], row["name"], int(row["held"]), int(row["retired"]), held)


def retirements(app: App) -> list[RetirementView]:
    """Every retirement, latest first."""
    return [_retirement(app, r) for r in reads(app).retirements()]


def retirement(app: App, certificate: str) -> RetirementView:
    """The retirement a certificate id names, when its keyed check holds.

    Raises:
        NotFoundError: not a valid certificate id, or no such retirement.
    """
    number = retirement_of_certificate(app, certificate)
    found = reads(app).retirements(number) if number is not None else []
    if not found:
        raise NotFoundError(f"no retirement certificate {certificate}")
    return _retirement(app, found[0])


def proofs(app: App, pseudonym: str, entry: int) -> list[dict[str, Any]]:
    """The inclusion proofs of a citizen's credit: one for each batch its grams are in (a
    credit split between two batches has two). Each is a self-contained document that
    `check_proof` (or `puhui proof verify`) checks offline against the batch's published root.

    Raises:
        NotFoundError: not a credit of this citizen, or not in any batch (yet).
    """
    found = reads(app).credit_batches(pseudonym, entry)
    if found is None:
        raise NotFoundError(f"no credit {entry} in this account")
    if not found:
        raise NotFoundError(f"credit {entry} is not in a certified batch")
    out = []
    for piece in found:
        row = reads(app).batch(int(piece["batch_id"]))
        assert row is not None
        index = int(piece["position"])
        hashed, path = reads(app).audit_path(int(piece["batch_id"]), index)
        out.append(
            {
                "format": PROOF_FORMAT,
                "batch": _serial(row),
                "root": row["root"],
                "tree_size": int(row["leaves"]),
                "leaf_index": index,
                "leaf": {
                    "platform": piece["platform"],
                    "record_id": piece["record_id"],
                    "grams": int(piece["grams"]),
                },
                "leaf_hash": hashed.hex(),
                "path": [h.hex() for h in path],
            }
        )
    return out


def check_proof(document: Mapping[str, Any], root: str | None = None) -> str | None:
    """Check an inclusion proof offline: its leaf, hashed as `domain.market.leaf` says, with
    its audit path gives the root (`root` when given: the one published by the registry, else
    the document's own). None when it holds, else why not."""
    if not isinstance(document, Mapping):
        return "not a proof: not a JSON object"
    try:
        if document.get("format") != PROOF_FORMAT:
            return f"not a proof: its format is not {PROOF_FORMAT!r}"
        leaf = document["leaf"]
        grams = leaf["grams"]
        if not isinstance(grams, int) or isinstance(grams, bool) or grams <= 0:
            return "the leaf's grams are not a positive whole number"
        data = rules.leaf(str(leaf["platform"]), str(leaf["record_id"]), grams)
        path = [bytes.fromhex(str(h)) for h in document["path"]]
        expected = bytes.fromhex(str(root if root is not None else document["root"]))
        index, size = int(document["leaf_index"]), int(document["tree_size"])
        own = bytes.fromhex(str(document["root"]))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return "not a proof: a field is missing or malformed"
    if own != expected:
        return "the proof is for another root than the one published"
    if rules.verify_inclusion(rules.leaf_hash(data), index, size, path, expected):
        return None
    return "the credit, with this path, does not give the batch's root"


def _batch_id(app: App, serial_or_id: str) -> int | None:
    text = serial_or_id.strip()
    if text.isascii() and text.isdigit():
        return int(text) if len(text) <= 15 else None
    try:
        serial = rules.parse_serial(text)
    except ValueError:
        raise InputError("a batch is named by its id or a serial number") from None
    return reads(app).batch_of_serial(serial.exchange, serial.first)


def _serial(row: Mapping[str, Any]) -> str:
    return rules.serial(
        row["exchange"], row["methodology"], row["vintage"], row["first_serial"], row["last_serial"]
    )


def _batch(row: Mapping[str, Any], blocks: list[dict[str, Any]]) -> BatchView:
    held = dict.fromkeys(rules.HOLDERS, 0)
    for k in blocks:
        if k["batch_id"] == row["id"]:
            held[k["holder"]] += int(k["last"]) - int(k["first"]) + 1
    return BatchView(
        int(row["id"]),
        _serial(row),
        row["exchange"],
        row["methodology"],
        row["region"],
        row["vintage"],
        int(row["units"]),
        int(row["buffer_units"]),
        int(row["buffer_bp"]),
        int(row["first_serial"]),
        int(row["last_serial"]),
        int(row["leaves"]),
        row["root"],
        row["certified_at"],
        int(row["drawn_g"]),
        int(row["shortfall_g"]),
        held,
    )


def _block(app: App, k: Mapping[str, Any], b: Mapping[str, Any]) -> BlockView:
    first, last = int(k["first"]), int(k["last"])
    retirement_id = k["retirement_id"]
    return BlockView(
        rules.serial(b["exchange"], b["methodology"], b["vintage"], first, last),
        _serial(b),
        first,
        last,
        last - first + 1,
        k["holder"],
        k["uscc"],
        k["name"],
        None if retirement_id is None else retirement_certificate_id(app, int(retirement_id)),
        k.get("node"),
    )


def _retirement(app: App, r: Mapping[str, Any]) -> RetirementView:
    serials = []
    moved = [
        rules.Block(int(m["batch_id"]), int(m["first"]), int(m["last"]))
        for m in reads(app).moves(int(r["operation_id"]))
        if m["kind"] == "retire"
    ]
    for block in rules.merged(moved):
        row = reads(app).batch(block.batch)
        assert row is not None
        serials.append(
            rules.serial(
                row["exchange"], row["methodology"], row["vintage"], block.first, block.last
            )
        )
    return RetirementView(
        retirement_certificate_id(app, int(r["id"])),
        r["uscc"],
        r["name"],
        int(r["units"]),
        r["beneficiary"],
        r["purpose"],
        r["at"],
        serials,
    )
