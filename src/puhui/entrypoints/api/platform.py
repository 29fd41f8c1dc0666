"""Routes of member platforms: submit records, read their receipts, define a points programme
of their own. (A platform reads a citizen's account only with the citizen's consent:
`/oauth/authorize`, `service.consent_oauth`.) Every request is signed
(`puhui.domain.signing`); a platform sees only its own records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from puhui.domain.errors import InputError
from puhui.entrypoints.api.deps import AppDep, CurrentPlatform, SettlementDep, SignedDep
from puhui.entrypoints.api.schemas import (
    MAX_PAGE,
    ReceiptPage,
    StoredReceipt,
    Submission,
    SubmissionResult,
)
from puhui.entrypoints.api.wallet_schemas import PlatformProgrammeIn, ProgrammeOut
from puhui.entrypoints.http import problem_doc
from puhui.service import queries, wallet

router = APIRouter(tags=["platform"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_doc("Not signed by an active key of a platform, stale, or replayed.")
}


@router.post(
    "/v1/records",
    response_model=SubmissionResult,
    responses=RESPONSES,
    summary="Submit records and get their receipts",
)
async def submit(
    body: Submission, signed: SignedDep, settlement: SettlementDep
) -> SubmissionResult:
    """Check, quantify, deduplicate and credit up to 10 000 records in one transaction.

    A re-sent submission returns the same receipts and credits nothing twice. A record whose
    `platform` is not the signing platform is rejected (`platform_mismatch`).
    """
    return SubmissionResult.of(await settlement.settle(signed.platform, body.records, signed))


@router.get(
    "/v1/receipts/{record_id}",
    response_model=StoredReceipt,
    responses={**RESPONSES, 404: problem_doc()},
    summary="The receipt of one of your records",
)
def one_receipt(record_id: str, platform: CurrentPlatform, app: AppDep) -> StoredReceipt:
    """Only the signing platform's own records are found."""
    return StoredReceipt.of(queries.receipt(app, platform, record_id))


@router.get(
    "/v1/receipts",
    response_model=ReceiptPage,
    responses=RESPONSES,
    summary="Your receipts in receive order, a page at a time",
)
def list_receipts(
    platform: CurrentPlatform,
    app: AppDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Receipts after this `seq`.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    received_from: Annotated[
        datetime | None, Query(description="Received at or after (RFC 3339 with offset).")
    ] = None,
    received_to: Annotated[
        datetime | None, Query(description="Received before (RFC 3339 with offset).")
    ] = None,
) -> ReceiptPage:
    """Receipts of the signing platform's records, optionally within a receive window."""
    items = queries.receipts_page(
        app,
        platform,
        after=after,
        limit=limit,
        received_from=_utc(received_from),
        received_to=_utc(received_to),
    )
    return ReceiptPage(
        items=[StoredReceipt.of(r) for r in items],
        next_after=items[-1].seq if len(items) == limit else None,
    )


@router.post(
    "/v1/programmes",
    response_model=ProgrammeOut,
    responses={
        401: problem_doc("Not signed by an active key of a platform."),
        409: problem_doc("The code is taken."),
    },
    summary="Define a points programme of your own",
)
def add_own_programme(
    body: PlatformProgrammeIn, signer: CurrentPlatform, app: AppDep
) -> ProgrammeOut:
    """Credits of your records from `starts_at` (now by default) earn its points."""
    return ProgrammeOut.of(
        wallet.add_programme(
            app,
            body.code,
            body.name,
            body.points_per_kg,
            body.expiry_days,
            signer,
            starts_at=body.starts_at,
        )
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise InputError(f"{moment.isoformat()} is out of range") from None
