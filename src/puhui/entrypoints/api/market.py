"""Routes of the carbon market (docs/market.md).

- The exchange's operators (an operator's bearer token) register companies, certify the
  credits of the citizens who take part into batches of serial-numbered units, sell units to
  companies and reverse certified credits found wrong; operators and regulators see what the
  buffers could not cover.
- A company, signing with its own key (the scheme member platforms sign with, docs/api.md;
  `puhui company key` issues the key), reads its holdings, transfers units to another company and
  retires units for a beneficiary and a purpose, with a certificate anyone can verify.
- Anyone reads the registry: batches with their Merkle roots, who holds which serial numbers,
  retirements and their certificates, and companies' holdings.

Every write answers a retry with the same `Idempotency-Key` as the first time and changes
nothing; the same key with another request is refused (`idempotency_conflict`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as Path_

from puhui.domain.errors import InputError, NotFoundError
from puhui.entrypoints.api.deps import (
    AppDep,
    CurrentCompany,
    IdempotencyKey,
    OperatorDep,
    StaffDep,
)
from puhui.entrypoints.api.market_schemas import (
    BatchDetailOut,
    BatchOut,
    BufferOut,
    CertificationIn,
    CertificationOut,
    CompanyIn,
    CompanyOut,
    CompanyRetirementIn,
    CompanyRetirementOut,
    CompanyTransferIn,
    DrawOut,
    MarketReversalIn,
    MarketReversalOut,
    RetirementOut,
    SaleIn,
    SaleOut,
    ShortfallsOut,
    TransferOut,
)
from puhui.entrypoints.http import problem_doc
from puhui.service import market, registry

router = APIRouter()

OPERATOR: dict[int | str, dict[str, Any]] = {
    401: problem_doc("No valid operator token."),
    403: problem_doc("Needs the operator role."),
    404: problem_doc("No such company, credit entry or programme."),
    409: problem_doc(
        "Refused: insufficient_units, company_exists, not_certified, already_reversed, "
        "idempotency_conflict."
    ),
}
COMPANY_READ: dict[int | str, dict[str, Any]] = {
    401: problem_doc(
        "Not signed by an active key of a company (a member platform's key is not one), "
        "stale, or replayed."
    ),
}
COMPANY: dict[int | str, dict[str, Any]] = {
    **COMPANY_READ,
    404: problem_doc("No such company."),
    409: problem_doc(
        "Refused: insufficient_units, same_company, idempotency_conflict; to another node: "
        "not_joined, same_node."
    ),
}
PUBLIC: dict[int | str, dict[str, Any]] = {404: problem_doc()}

# A batch by its id, or by a serial number of any of its units.
BatchName = Annotated[
    str,
    Path_(
        max_length=120,
        pattern=r"^([0-9]{1,9}|CN-PH-[A-Z]{2}-[A-Z0-9][A-Z0-9.\-]*-[0-9]{4}-[0-9]{2}"
        r"-[1-9][0-9]{0,17}-[1-9][0-9]{0,17})$",
        description="The batch's id, its serial number, or a serial range of units in it.",
        examples=["CN-PH-SC-CN-COMMON.V1.0.0-2026-10-1-5"],
    ),
]
CertificateId = Annotated[str, Path_(max_length=40, examples=["CR-00000001-11208F2D36"])]
_CERTIFICATE = re.compile(r"CR-[0-9]{1,18}-[0-9A-F]{10}")


# --- the exchange's operators ---------------------------------------------------------------


@router.post(
    "/v1/market/companies",
    response_model=CompanyOut,
    status_code=201,
    tags=["market"],
    responses=OPERATOR,
    summary="Register a company (operators)",
)
def add_company(body: CompanyIn, who: OperatorDep, app: AppDep) -> CompanyOut:
    """By its unified social credit code, whose check character must hold. Its API key, for
    its own routes (`/v1/company/…`), is issued with `puhui company key` and shown once."""
    market.add_company(app, body.uscc, body.name)
    return CompanyOut.of(registry.company(app, body.uscc))


@router.post(
    "/v1/market/certifications",
    response_model=CertificationOut,
    tags=["market"],
    responses=OPERATOR,
    summary="Certify a month's credits and issue a batch of units (operators)",
)
def certify(
    body: CertificationIn, who: OperatorDep, key: IdempotencyKey, app: AppDep
) -> CertificationOut:
    """The credited grams of the month, methodology version and region, of the citizens who
    granted the `certify` scope, oldest first and only while their accounts still hold them,
    move into the pool; the pool's whole units are issued as a batch with the next serial
    numbers, its buffer share withheld (rounded up), and its Merkle root published."""
    done = market.certify(
        app,
        body.period,
        body.methodology,
        body.region,
        key,
        _staff(who.name),
        buffer_bp=body.buffer_bp,
        programme=body.programme,
    )
    return CertificationOut.of(done)


@router.post(
    "/v1/market/sales",
    response_model=SaleOut,
    tags=["market"],
    responses=OPERATOR,
    summary="Sell units to a company (operators)",
)
def sell(body: SaleIn, who: OperatorDep, key: IdempotencyKey, app: AppDep) -> SaleOut:
    """The exchange's lowest-numbered unsold units go to the company; the price is recorded,
    the money settled outside puhui."""
    return SaleOut.of(
        market.sell(app, body.company, body.units, body.unit_price_cny, key, _staff(who.name))
    )


@router.post(
    "/v1/market/reversals",
    response_model=MarketReversalOut,
    tags=["market"],
    responses=OPERATOR,
    summary="Reverse a certified credit (operators)",
)
def reverse(
    body: MarketReversalIn, who: OperatorDep, key: IdempotencyKey, app: AppDep
) -> MarketReversalOut:
    """Units sold are never taken back from a buyer: the credit's grams still in the pool go
    back from the pool, those in batches are drawn from each batch's buffer, and what a buffer
    cannot cover is recorded as its shortfall (`/v1/market/shortfalls`)."""
    return MarketReversalOut.of(
        market.reverse_credit(app, body.entry, body.reason, key, _staff(who.name))
    )


@router.get(
    "/v1/market/shortfalls",
    response_model=ShortfallsOut,
    tags=["market"],
    responses={
        401: problem_doc("No valid operator or regulator token."),
        403: problem_doc("The token's role may not read this."),
    },
    summary="Buffers, their draws and shortfalls (operators and regulators)",
)
def shortfalls(staff: StaffDep, app: AppDep) -> ShortfallsOut:
    """Each batch's buffer and what reversals of its credits drew from it; each reversal's
    draws, latest first; and the grams no buffer covered."""
    batches = registry.batches(app)
    serial_of = {b.id: b.serial for b in batches}
    return ShortfallsOut(
        shortfall_g=sum(b.shortfall_g for b in batches),
        batches=[
            BufferOut(
                batch=b.serial,
                buffer_units=b.buffer_units,
                buffer_held=b.held["buffer"],
                cancelled=b.held["cancelled"],
                drawn_g=b.drawn_g,
                shortfall_g=b.shortfall_g,
            )
            for b in batches
        ],
        draws=[
            DrawOut(
                operation=int(d["operation_id"]),
                record_seq=int(d["record_seq"]),
                batch=None if d["batch_id"] is None else serial_of[int(d["batch_id"])],
                grams=int(d["grams"]),
                drawn_g=int(d["drawn_g"]),
                shortfall_g=int(d["shortfall_g"]),
                at=d["at"],
            )
            for d in registry.reads(app).draws()
        ],
    )


# --- a company, with its own key ---------------------------------------------------------------


@router.get(
    "/v1/company/holdings",
    response_model=CompanyOut,
    tags=["company"],
    responses=COMPANY_READ,
    summary="Your units, held and retired",
)
def my_holdings(company: CurrentCompany, app: AppDep) -> CompanyOut:
    """The units you hold and those you retired, as serial ranges."""
    return CompanyOut.of(registry.company(app, company))


@router.post(
    "/v1/company/transfers",
    response_model=TransferOut,
    tags=["company"],
    responses=COMPANY,
    summary="Transfer units to another company",
)
def transfer(
    body: CompanyTransferIn, company: CurrentCompany, key: IdempotencyKey, app: AppDep
) -> TransferOut:
    """Your lowest-numbered units go to the company named by its code; with `node`, to a
    company at another node of the common mechanism."""
    if body.node is not None:
        if body.name is None:
            raise InputError("a transfer to another node names the receiving company (`name`)")
        return TransferOut.of(
            market.export(
                app, company, body.node, body.to, body.name, body.units, key, _company(company)
            )
        )
    return TransferOut.of(
        market.transfer(app, company, body.to, body.units, key, _company(company))
    )


@router.post(
    "/v1/company/retirements",
    response_model=CompanyRetirementOut,
    tags=["company"],
    responses=COMPANY,
    summary="Retire units, with a certificate",
)
def retire(
    body: CompanyRetirementIn, company: CurrentCompany, key: IdempotencyKey, app: AppDep
) -> CompanyRetirementOut:
    """Your lowest-numbered units are retired for good, for the beneficiary and the purpose
    given: they never move again. The answer names the certificate, which anyone can verify
    at `/v1/registry/retirements/{certificate}`, and the serial ranges retired."""
    return CompanyRetirementOut.of(
        market.retire(
            app, company, body.units, body.beneficiary, body.purpose, key, _company(company)
        )
    )


# --- the public registry ---------------------------------------------------------------------


@router.get(
    "/v1/registry/batches",
    response_model=list[BatchOut],
    tags=["registry"],
    summary="Every batch of certified units",
)
def batches(app: AppDep) -> list[BatchOut]:
    """Public, oldest first: serial range, methodology, region and month, buffer, Merkle root
    (what a citizen's proof checks against), and units by holder."""
    return [BatchOut.of(b) for b in registry.batches(app)]


@router.get(
    "/v1/registry/batches/{serial_or_id}",
    response_model=BatchDetailOut,
    tags=["registry"],
    responses=PUBLIC,
    summary="One batch and who holds which of its units",
)
def batch(serial_or_id: BatchName, app: AppDep) -> BatchDetailOut:
    """Public: by its id, its serial number or a serial range of units in it; its blocks of
    units, lowest numbers first, with their holders."""
    found = registry.batch(app, serial_or_id)
    return BatchDetailOut.with_blocks(found, registry.blocks(app, found.id))


@router.get(
    "/v1/registry/retirements",
    response_model=list[RetirementOut],
    tags=["registry"],
    summary="Every retirement of units",
)
def retirements(app: AppDep) -> list[RetirementOut]:
    """Public, latest first: the company, how many units, for whom and why, and the serial
    ranges retired."""
    return [RetirementOut.of(r) for r in registry.retirements(app)]


@router.get(
    "/v1/registry/retirements/{certificate}",
    response_model=RetirementOut,
    tags=["registry"],
    responses=PUBLIC,
    summary="Verify a retirement certificate",
)
def retirement(certificate: CertificateId, app: AppDep) -> RetirementOut:
    """Public: a certificate id carries a keyed check, so ids cannot be guessed and a printed
    one is verified here."""
    if not _CERTIFICATE.fullmatch(certificate):
        raise NotFoundError("no such retirement certificate")
    return RetirementOut.of(registry.retirement(app, certificate))


@router.get(
    "/v1/registry/companies",
    response_model=list[CompanyOut],
    tags=["registry"],
    summary="Every company and its units",
)
def companies(app: AppDep) -> list[CompanyOut]:
    """Public, by code: the units each company holds and has retired, as serial ranges."""
    return [CompanyOut.of(c) for c in registry.companies(app)]


def _staff(name: str) -> str:
    return f"staff:{name}"[:80]


def _company(uscc: str) -> str:
    return f"company:{uscc}"
