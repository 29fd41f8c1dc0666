"""The documents of the carbon market: what the exchange's operators ask (companies,
certifications, sales, reversals of certified credits), what a company asks with its own key
(holdings, transfers, retirements), what the public registry shows (batches and their Merkle
roots, who holds which serial numbers, retirements and their certificates), and a citizen's
proof that a credit of theirs is in a batch.

Units are whole tonnes CO2e; grams stay grams. A serial number reads
`CN-PH-<exchange>-<methodology>-<vintage>-<first>-<last>` (docs/market.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from puhui.domain import market as rules
from puhui.domain.accounts import Outcome
from puhui.service import registry

# A unified social credit code as sent: 18 characters of its alphabet, either case (its check
# character is checked where it is registered).
USCC = r"^[0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-y]{18}$"
# Text kept and shown to people: at least one character that is not a space.
SHOWN = r"\S"
MAX_UNITS = 10**9

Holder = Literal["exchange", "company", "buffer", "retired", "cancelled"]


# --- what operators and companies ask ---------------------------------------------------------


class CompanyIn(BaseModel):
    """A company to register, by its unified social credit code (GB 32100-2015)."""

    uscc: str = Field(pattern=USCC, examples=["91350100M000100Y43"])
    name: str = Field(min_length=1, max_length=200, pattern=SHOWN, examples=["Acme 有限公司"])


class CertificationIn(BaseModel):
    """What to certify: the credits of a month, a methodology version and a region, of the
    citizens who take part (they granted the `certify` scope)."""

    period: str = Field(
        pattern=r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$",
        description="A month, China time, by when the behaviour started: YYYY-MM (1970 to 2999).",
        examples=["2026-10"],
    )
    methodology: str = Field(
        max_length=96,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]*@[A-Za-z0-9][A-Za-z0-9.\-]*$",
        description="A methodology version, id@version.",
        examples=["cn-common@1.0.0"],
    )
    region: str = Field(
        pattern=r"^[0-9]{2}([0-9]{2}){0,2}$",
        description="A GB/T 2260 code or prefix: province (2 digits), city (4) or county (6).",
        examples=["510100"],
    )
    buffer_bp: int = Field(
        rules.DEFAULT_BUFFER_BP,
        ge=0,
        le=9_999,
        description="The share of the batch withheld against reversals, in basis points "
        "(rounded up to whole units).",
    )
    programme: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The points programme whose points the citizens get for the grams they "
        "give; none: no points.",
    )


class SaleIn(BaseModel):
    """Units the exchange sells to a company; the money is settled outside puhui."""

    company: str = Field(pattern=USCC, description="The buyer's unified social credit code.")
    units: int = Field(ge=1, le=MAX_UNITS, description="Whole units, tonnes CO2e.")
    unit_price_cny: str = Field(
        pattern=r"^[0-9]{1,13}(\.[0-9]{1,2})?$",
        description="The price of a unit, CNY, as a decimal string (at most two decimals).",
        examples=["68.50"],
    )


class MarketReversalIn(BaseModel):
    """A certified credit found wrong, by its ledger entry, and why."""

    entry: int = Field(ge=1, le=2**63 - 1, description="The credit's entry in the ledger.")
    reason: str = Field(min_length=1, max_length=200, pattern=SHOWN)


class CompanyTransferIn(BaseModel):
    """Units to move to another company."""

    to: str = Field(pattern=USCC, description="The receiving company's code.")
    units: int = Field(ge=1, le=MAX_UNITS)
    node: str | None = Field(
        default=None,
        pattern=r"^[A-Z0-9]{2,16}$",
        description="The node (exchange code) of the common mechanism the receiving company is "
        "registered at, when it is not this one: the units leave this registry and reach that "
        "node's when this node next syncs with the registry (docs/federation.md).",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=SHOWN,
        description="The receiving company's name, with `node`.",
    )


class CompanyRetirementIn(BaseModel):
    """Units to retire for good, for whom and why (both printed on the certificate)."""

    units: int = Field(ge=1, le=MAX_UNITS)
    beneficiary: str = Field(min_length=1, max_length=200, pattern=SHOWN, examples=["Acme"])
    purpose: str = Field(min_length=1, max_length=200, pattern=SHOWN, examples=["2026 ESG report"])


# --- what they are answered ---------------------------------------------------------------


class IssuedOut(BaseModel):
    """A batch issued by a certification."""

    serial: str
    units: int
    buffer_units: int
    root: str = Field(description="The Merkle root of its credits (RFC 9162), hex.")
    leaves: int


class CertificationOut(BaseModel):
    """What a certification did; the same answer for a retry with the same key."""

    operation: int
    replayed: bool = Field(description="True when this answers a retry of a done operation.")
    period: str
    methodology: str
    region: str
    credits: int = Field(description="Credits certified now.")
    citizens: int = Field(description="Citizens whose credits were certified now.")
    certified_g: int = Field(description="Grams certified now, into the pool.")
    points: int = Field(description="Points the citizens got for them.")
    pool_g: int = Field(description="Grams left in the pool for the next batch.")
    batch: IssuedOut | None = Field(description="The batch issued; null: under one unit.")

    @classmethod
    def of(cls, done: Outcome) -> CertificationOut:
        r = done.result
        batch = r.get("batch")
        return cls(
            operation=done.operation,
            replayed=done.replayed,
            period=r["period"],
            methodology=r["methodology"],
            region=r["region"],
            credits=r["credits"],
            citizens=r["citizens"],
            certified_g=r["certified_g"],
            points=r["points"],
            pool_g=r["pool_g"],
            batch=None if batch is None else IssuedOut(**batch),
        )


class SaleOut(BaseModel):
    """What a sale did; the same answer for a retry with the same key."""

    operation: int
    replayed: bool
    company: str
    units: int
    unit_price_cny: str = Field(examples=["68.50"])
    serials: list[str] = Field(description="The units sold, as serial ranges.")

    @classmethod
    def of(cls, done: Outcome) -> SaleOut:
        r = done.result
        return cls(
            operation=done.operation,
            replayed=done.replayed,
            company=r["company"],
            units=r["units"],
            unit_price_cny=_cny(int(r["unit_price_fen"])),
            serials=r["serials"],
        )


class ReversalDrawOut(BaseModel):
    """Where a reversed credit's grams came back from: the pool (`batch` null) or a batch's
    buffer, and what the buffer could not cover."""

    batch: str | None
    grams: int = Field(description="Of the credit, in this batch or the pool.")
    drawn_g: int = Field(description="Taken back from the buffer or the pool.")
    shortfall_g: int = Field(0, description="What the buffer could not cover.")
    units_cancelled: int = Field(0, description="Buffer units no longer backed, cancelled.")


class MarketReversalOut(BaseModel):
    """What a reversal of a certified credit did; the same answer for a retry."""

    operation: int
    replayed: bool
    entry: int
    reason: str
    draws: list[ReversalDrawOut]

    @classmethod
    def of(cls, done: Outcome) -> MarketReversalOut:
        r = done.result
        return cls(
            operation=done.operation,
            replayed=done.replayed,
            entry=r["reversed"],
            reason=r["reason"],
            draws=[ReversalDrawOut(**d) for d in r["draws"]],
        )


class TransferOut(BaseModel):
    """What a transfer did; the same answer for a retry with the same key."""

    operation: int
    replayed: bool
    company: str = Field(description="The giving company.")
    to: str
    units: int
    serials: list[str] = Field(description="The units moved, as serial ranges.")
    node: str | None = Field(default=None, description="The receiving company's node, if other.")
    transfers: list[int] = Field(
        default_factory=list, description="To another node: the transfers' numbers."
    )

    @classmethod
    def of(cls, done: Outcome) -> TransferOut:
        r = done.result
        return cls(
            operation=done.operation,
            replayed=done.replayed,
            company=r["from"],
            to=r["to"],
            units=r["units"],
            serials=r["serials"],
            node=r.get("to_node"),
            transfers=r.get("transfers", []),
        )


class CompanyRetirementOut(BaseModel):
    """What a retirement did, and its certificate; the same answer for a retry."""

    operation: int
    replayed: bool
    certificate: str = Field(
        description="Verify it at /v1/registry/retirements/{certificate}.",
        examples=["CR-00000001-11208F2D36"],
    )
    company: str
    units: int
    beneficiary: str
    purpose: str
    serials: list[str] = Field(description="The units retired, as serial ranges.")

    @classmethod
    def of(cls, done: Outcome) -> CompanyRetirementOut:
        r = done.result
        return cls(
            operation=done.operation,
            replayed=done.replayed,
            certificate=r["certificate"],
            company=r["company"],
            units=r["units"],
            beneficiary=r["beneficiary"],
            purpose=r["purpose"],
            serials=r["serials"],
        )


# --- the registry -----------------------------------------------------------------------------


class HeldOut(BaseModel):
    """A batch's units by who holds them."""

    exchange: int = Field(description="Not sold yet.")
    company: int = Field(description="Held by companies.")
    buffer: int = Field(description="Withheld against reversals.")
    retired: int = Field(description="Retired by companies, for good.")
    cancelled: int = Field(description="Buffer units no longer backed after reversals.")


class BatchOut(BaseModel):
    """A batch of certified units."""

    id: int
    serial: str = Field(examples=["CN-PH-SC-CN-COMMON.V1.0.0-2026-10-1-5"])
    exchange: str
    methodology: str
    region: str
    vintage: str = Field(description="The month certified, YYYY-MM.")
    units: int
    buffer_units: int
    buffer_bp: int
    first: int = Field(description="Its first unit number.")
    last: int = Field(description="Its last unit number.")
    leaves: int = Field(description="Credits its Merkle tree commits to.")
    root: str = Field(description="The Merkle root (RFC 9162) a citizen's proof checks, hex.")
    certified_at: datetime
    drawn_g: int = Field(description="Grams reversals of its credits drew from its buffer.")
    shortfall_g: int = Field(description="Grams reversed its buffer could not cover.")
    held: HeldOut

    @classmethod
    def of(cls, b: registry.BatchView) -> BatchOut:
        return cls(**_batch_fields(b))


class BlockOut(BaseModel):
    """Consecutive units and who holds them."""

    serial: str
    batch: str = Field(description="The batch's serial.")
    first: int
    last: int
    units: int
    holder: Holder
    company: str | None = Field(description="The holding or retiring company's code.")
    company_name: str | None
    certificate: str | None = Field(description="Retired units: their certificate.")

    @classmethod
    def of(cls, k: registry.BlockView) -> BlockOut:
        return cls(
            serial=k.serial,
            batch=k.batch,
            first=k.first,
            last=k.last,
            units=k.units,
            holder=k.holder,  # type: ignore[arg-type]  # the table's check constraint
            company=k.company,
            company_name=k.company_name,
            certificate=k.certificate,
        )


class BatchDetailOut(BatchOut):
    """A batch with who holds which of its units."""

    blocks: list[BlockOut] = Field(description="Lowest numbers first; they cover the batch.")

    @classmethod
    def with_blocks(cls, b: registry.BatchView, blocks: list[registry.BlockView]) -> BatchDetailOut:
        return cls(**_batch_fields(b), blocks=[BlockOut.of(k) for k in blocks])


class RetirementOut(BaseModel):
    """A retirement of units by a company, and its certificate."""

    certificate: str
    company: str
    company_name: str
    units: int
    beneficiary: str
    purpose: str
    at: datetime
    serials: list[str] = Field(description="The units retired, as serial ranges.")

    @classmethod
    def of(cls, r: registry.RetirementView) -> RetirementOut:
        return cls(
            certificate=r.certificate,
            company=r.company,
            company_name=r.company_name,
            units=r.units,
            beneficiary=r.beneficiary,
            purpose=r.purpose,
            at=r.at,
            serials=r.serials,
        )


class CompanyOut(BaseModel):
    """A company and its units."""

    uscc: str
    name: str
    held: int = Field(description="Units it holds now.")
    retired: int = Field(description="Units it retired.")
    blocks: list[BlockOut] = Field(description="Its units held and retired, as serial ranges.")

    @classmethod
    def of(cls, c: registry.CompanyView) -> CompanyOut:
        return cls(
            uscc=c.uscc,
            name=c.name,
            held=c.held,
            retired=c.retired,
            blocks=[BlockOut.of(k) for k in c.blocks],
        )


class BufferOut(BaseModel):
    """A batch's buffer: what reversals drew from it and what it could not cover."""

    batch: str
    buffer_units: int = Field(description="Withheld when it was issued.")
    buffer_held: int = Field(description="Still in the buffer.")
    cancelled: int = Field(description="Cancelled: no longer backed by grams.")
    drawn_g: int
    shortfall_g: int


class DrawOut(BaseModel):
    """What one reversal of a certified credit drew, from the pool or a batch's buffer."""

    operation: int
    record_seq: int = Field(description="The reversed credit's record, by receive order.")
    batch: str | None = Field(description="The batch; null: its grams were still in the pool.")
    grams: int
    drawn_g: int
    shortfall_g: int
    at: datetime


class ShortfallsOut(BaseModel):
    """Reversals of certified credits: what each drew, each batch's buffer, and what the
    buffers could not cover."""

    shortfall_g: int = Field(description="Grams reversed that no buffer covered, in all.")
    batches: list[BufferOut]
    draws: list[DrawOut] = Field(description="Latest first.")


class ProofLeafOut(BaseModel):
    """A credit as the batch's Merkle leaf commits to it."""

    platform: str
    record_id: str
    grams: int = Field(description="The credit's grams in this batch.")


class ProofOut(BaseModel):
    """A self-contained inclusion proof (RFC 9162, 2.1.3) of a credit in a batch: hash the
    leaf as docs/market.md says, walk the path, and compare with the root the registry
    publishes for the batch (`puhui proof verify` does it offline)."""

    format: str = Field(examples=[registry.PROOF_FORMAT])
    batch: str
    root: str
    tree_size: int
    leaf_index: int
    leaf: ProofLeafOut
    leaf_hash: str
    path: list[str] = Field(description="Sibling hashes from the leaf up, hex.")

    @classmethod
    def of(cls, document: dict[str, Any]) -> ProofOut:
        return cls(**{**document, "leaf": ProofLeafOut(**document["leaf"])})


def _cny(fen: int) -> str:
    """An amount in fen as CNY with two decimals: 6850 is `68.50`."""
    return f"{fen // 100}.{fen % 100:02d}"


def _batch_fields(b: registry.BatchView) -> dict[str, Any]:
    return {
        "id": b.id,
        "serial": b.serial,
        "exchange": b.exchange,
        "methodology": b.methodology,
        "region": b.region,
        "vintage": b.vintage,
        "units": b.units,
        "buffer_units": b.buffer_units,
        "buffer_bp": b.buffer_bp,
        "first": b.first,
        "last": b.last,
        "leaves": b.leaves,
        "root": b.root,
        "certified_at": b.certified_at,
        "drawn_g": b.drawn_g,
        "shortfall_g": b.shortfall_g,
        "held": HeldOut(**b.held),
    }
