"""Routes of a citizen, with the bearer token their member app obtained for them (/v1/me…):
balance, holdings, history and how each credit was computed; redemptions, retirements against
their own footprint and gifts, each under an `Idempotency-Key`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as Path_

from puhui.domain import footprints
from puhui.domain.errors import InputError
from puhui.entrypoints.api.deps import AppDep, CurrentCitizen, IdempotencyKey
from puhui.entrypoints.api.schemas import (
    MAX_PAGE,
    BalanceOut,
    CreditExplanation,
    HistoryPage,
    MovementOut,
)
from puhui.entrypoints.api.wallet_schemas import (
    GiftIn,
    HoldingsOut,
    OperationLine,
    OperationOut,
    RedemptionIn,
    RetirementIn,
)
from puhui.entrypoints.http import problem_doc
from puhui.service import citizens, queries, wallet

router = APIRouter(tags=["citizen"])

RESPONSES: dict[int | str, dict[str, Any]] = {401: problem_doc("No valid citizen token.")}
ACCOUNT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    404: problem_doc(),
    409: problem_doc("Refused: insufficient_balance, out_of_stock, limit_reached, …"),
}


@router.get("/v1/me", response_model=BalanceOut, responses=RESPONSES, summary="Your balance")
def my_balance(citizen: CurrentCitizen, app: AppDep) -> BalanceOut:
    """Verified reductions credited to you, over every member platform."""
    return BalanceOut(balance_g=wallet.holdings(app, citizen.pseudonym).balance_g)


@router.get(
    "/v1/me/history",
    response_model=HistoryPage,
    responses=RESPONSES,
    summary="Your account's movements, newest first",
)
def my_history(
    citizen: CurrentCitizen,
    app: AppDep,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> HistoryPage:
    """Each credit with its platform, scene and methodology; open one with
    `/v1/me/credits/{entry_id}` to see how it was computed."""
    lines = citizens.history(app, citizen, before, limit)
    return HistoryPage(
        items=[MovementOut(**dataclasses.asdict(m)) for m in lines],
        next_before=lines[-1].entry_id if len(lines) == limit else None,
    )


@router.get(
    "/v1/me/credits/{entry_id}",
    response_model=CreditExplanation,
    responses={**RESPONSES, 404: problem_doc()},
    summary="How one of your credits was computed",
)
def my_credit(
    entry_id: Annotated[int, Path_(ge=1, le=2**63 - 1)], citizen: CurrentCitizen, app: AppDep
) -> CreditExplanation:
    """Methodology and version, formulas, every factor with its value, evidence, source and
    the region it was found for, and the rounding to whole grams."""
    return CreditExplanation.of(entry_id, citizen, citizens.explain_credit(app, citizen, entry_id))


@router.get(
    "/v1/me/holdings",
    response_model=HoldingsOut,
    responses=ACCOUNT_RESPONSES,
    summary="Your grams, retired grams and points",
)
def my_holdings(who: CurrentCitizen, app: AppDep) -> HoldingsOut:
    """Grams CO2e and points apart: grams are verified reductions, points an incentive."""
    return HoldingsOut(**dataclasses.asdict(wallet.holdings(app, who.pseudonym)))


@router.get(
    "/v1/me/operations",
    response_model=list[OperationLine],
    responses=ACCOUNT_RESPONSES,
    summary="Your redemptions, retirements, gifts and reversals, newest first",
)
def my_operations(who: CurrentCitizen, app: AppDep) -> list[OperationLine]:
    """The last 100, with what each did."""
    return [
        OperationLine(**dataclasses.asdict(o)) for o in wallet.operations(app, who.pseudonym, 100)
    ]


@router.post(
    "/v1/me/redemptions",
    response_model=OperationOut,
    responses=ACCOUNT_RESPONSES,
    summary="Redeem a reward",
)
def redeem(
    body: RedemptionIn, who: CurrentCitizen, key: IdempotencyKey, app: AppDep
) -> OperationOut:
    """Pays the price from your grams or points; a coupon answers with its code, a tree with
    its number and certificate."""
    return OperationOut.of(wallet.redeem(app, who.pseudonym, body.reward, key, _actor(who)))


@router.post(
    "/v1/me/retirements",
    response_model=OperationOut,
    responses=ACCOUNT_RESPONSES,
    summary="Retire grams against your own footprint",
)
def retire(
    body: RetirementIn, who: CurrentCitizen, key: IdempotencyKey, app: AppDep
) -> OperationOut:
    """Retired grams are gone for good: never spent, moved or retired again. The answer
    names the certificate (`/v1/certificates/{id}`)."""
    f = body.footprint
    declared = footprints.compute(app.catalogue, f.kind, f.amount, f.region) if f else None
    grams = body.grams if body.grams is not None else declared.grams if declared else None
    if grams is None:
        raise InputError("give grams, a footprint, or both")
    return OperationOut.of(
        wallet.retire(
            app,
            who.pseudonym,
            grams,
            key,
            _actor(who),
            footprint=declared.as_dict() if declared else None,
        )
    )


@router.post(
    "/v1/me/gifts",
    response_model=OperationOut,
    responses=ACCOUNT_RESPONSES,
    summary="Give grams or points to another citizen",
)
def give(body: GiftIn, who: CurrentCitizen, key: IdempotencyKey, app: AppDep) -> OperationOut:
    """At most 100 kg (or 100 000 points) a gift and twice that a day. The receiver's
    identifier is pseudonymised at once and never stored."""
    to = queries.pseudonym_of(app, body.to)
    return OperationOut.of(
        wallet.transfer(
            app, who.pseudonym, to, body.amount, key, _actor(who), programme=body.programme
        )
    )


def _actor(who: citizens.Citizen) -> str:
    return f"platform:{who.platform}"
