"""Routes of a citizen (/v1/me…), with the access token a member app obtained when the citizen
granted it some scopes, or with the citizen's own session: balance and holdings (`balance`),
history, how each credit was computed, the proof that a credit is in a certified batch, and
operations (`history`, or `history:all`),
redemptions, retirements against their own footprint and gifts, each under an
`Idempotency-Key` (`spend`); the citizen's grants, listed and revoked with their own session
only.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as Path_
from pydantic import BaseModel, Field, StringConstraints

from puhui.domain import footprints
from puhui.domain.errors import InputError, NotFoundError
from puhui.entrypoints.api.deps import (
    AppDep,
    BalanceReader,
    HistoryReader,
    IdempotencyKey,
    OwnCitizen,
    Spender,
)
from puhui.entrypoints.api.market_schemas import ProofOut
from puhui.entrypoints.api.schemas import (
    MAX_PAGE,
    BalanceOut,
    CreditExplanation,
    GrantOut,
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
from puhui.service import citizens, erasure, queries, registry, wallet
from puhui.service import consent as consents

router = APIRouter(tags=["citizen"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_doc("No valid citizen token."),
    403: problem_doc(
        "The grant does not allow this: consent_required, grant_revoked, grant_expired, "
        "insufficient_scope."
    ),
}
ACCOUNT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    404: problem_doc(),
    409: problem_doc("Refused: insufficient_balance, out_of_stock, limit_reached, …"),
}


@router.get("/v1/me", response_model=BalanceOut, responses=RESPONSES, summary="Your balance")
def my_balance(citizen: BalanceReader, app: AppDep) -> BalanceOut:
    """Verified reductions credited to you, over every member platform."""
    return BalanceOut(balance_g=wallet.holdings(app, citizen.pseudonym).balance_g)


@router.get(
    "/v1/me/history",
    response_model=HistoryPage,
    responses=RESPONSES,
    summary="Your account's movements, newest first",
)
def my_history(
    citizen: HistoryReader,
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
    entry_id: Annotated[int, Path_(ge=1, le=2**63 - 1)], citizen: HistoryReader, app: AppDep
) -> CreditExplanation:
    """Methodology and version, formulas, every factor with its value, evidence, source and
    the region it was found for, and the rounding to whole grams."""
    return CreditExplanation.of(entry_id, citizen, citizens.explain_credit(app, citizen, entry_id))


@router.get(
    "/v1/me/credits/{entry_id}/proof",
    response_model=list[ProofOut],
    responses={
        **RESPONSES,
        404: problem_doc("Not a credit of yours, or not in a certified batch (yet)."),
    },
    summary="The proof that one of your credits is in a certified batch",
)
def my_credit_proof(
    entry_id: Annotated[int, Path_(ge=1, le=2**63 - 1)], citizen: HistoryReader, app: AppDep
) -> list[ProofOut]:
    """One proof for each batch the credit's grams are in (a credit split between two batches
    has two). Each is self-contained: check it offline against the root the registry publishes
    for its batch (`/v1/registry/batches`, or `puhui proof verify`). A batch names receipts
    and grams, never a citizen."""
    if citizen.sees_all():
        return [ProofOut.of(p) for p in registry.proofs(app, citizen.pseudonym, entry_id)]
    # A platform seeing only its own records learns nothing of the others' credits.
    try:
        found = registry.proofs(app, citizen.pseudonym, entry_id)
    except NotFoundError:
        found = []
    if not found or any(p["leaf"]["platform"] != citizen.platform for p in found):
        raise NotFoundError(f"no credit {entry_id} of this platform's in a certified batch")
    return [ProofOut.of(p) for p in found]


@router.get(
    "/v1/me/holdings",
    response_model=HoldingsOut,
    responses=ACCOUNT_RESPONSES,
    summary="Your grams, retired grams and points",
)
def my_holdings(who: BalanceReader, app: AppDep) -> HoldingsOut:
    """Grams CO2e and points apart: grams are verified reductions, points an incentive."""
    return HoldingsOut(**dataclasses.asdict(wallet.holdings(app, who.pseudonym)))


@router.get(
    "/v1/me/operations",
    response_model=list[OperationLine],
    responses=ACCOUNT_RESPONSES,
    summary="Your redemptions, retirements, gifts and reversals, newest first",
)
def my_operations(who: HistoryReader, app: AppDep) -> list[OperationLine]:
    """The last 100, with what each did (with `history`, those done through this platform)."""
    return [
        OperationLine(**dataclasses.asdict(o))
        for o in wallet.operations(app, who.pseudonym, 100)
        if who.sees_all() or o.actor == _actor(who)
    ]


@router.post(
    "/v1/me/redemptions",
    response_model=OperationOut,
    responses=ACCOUNT_RESPONSES,
    summary="Redeem a reward",
)
def redeem(body: RedemptionIn, who: Spender, key: IdempotencyKey, app: AppDep) -> OperationOut:
    """Pays the price from your grams or points; a coupon answers with its code, a tree with
    its number and certificate."""
    return OperationOut.of(wallet.redeem(app, who.pseudonym, body.reward, key, _actor(who)))


@router.post(
    "/v1/me/retirements",
    response_model=OperationOut,
    responses=ACCOUNT_RESPONSES,
    summary="Retire grams against your own footprint",
)
def retire(body: RetirementIn, who: Spender, key: IdempotencyKey, app: AppDep) -> OperationOut:
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
def give(body: GiftIn, who: Spender, key: IdempotencyKey, app: AppDep) -> OperationOut:
    """At most 100 kg (or 100 000 points) a gift and twice that a day. The receiver's
    identifier is pseudonymised at once and never stored."""
    to = queries.pseudonym_of(app, body.to)
    return OperationOut.of(
        wallet.transfer(
            app, who.pseudonym, to, body.amount, key, _actor(who), programme=body.programme
        )
    )


@router.get(
    "/v1/me/grants",
    response_model=list[GrantOut],
    responses=RESPONSES,
    summary="Your grants to member platforms, newest first",
)
def my_grants(who: OwnCitizen, app: AppDep) -> list[GrantOut]:
    """Which platform may do what, since and until when, and whether it still may."""
    now = app.clock()
    return [GrantOut.of(g, now) for g in consents.grants(app, who.pseudonym)]


@router.delete(
    "/v1/me/grants/{grant_id}",
    response_model=GrantOut,
    responses={**RESPONSES, 404: problem_doc()},
    summary="Revoke one of your grants",
)
def revoke_grant(
    grant_id: Annotated[str, Path_(min_length=1, max_length=40)], who: OwnCitizen, app: AppDep
) -> GrantOut:
    """From the platform's next call on, its tokens of this grant are refused
    (`grant_revoked`). Revoking a revoked grant changes nothing."""
    return GrantOut.of(consents.revoke(app, who.pseudonym, grant_id), app.clock())


def _actor(who: citizens.Citizen) -> str:
    return f"platform:{who.platform}" if who.platform else "citizen"


class ErasureRequest(BaseModel):
    """A citizen's own request to be erased."""

    grounds: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        "my own request", description="Why, in the citizen's words (optional)."
    )
    confirm: Literal["erase my account"] = Field(
        description="The words `erase my account`: erasure cannot be undone."
    )


class ErasureDone(BaseModel):
    """What an erasure did."""

    erasure: int
    records: int = Field(description="Records whose behaviour details were deleted.")


@router.post(
    "/v1/me/erasure",
    response_model=ErasureDone,
    status_code=201,
    responses={
        **RESPONSES,
        404: problem_doc("puhui holds no account for you."),
        422: problem_doc(),
    },
    summary="Erase yourself from puhui",
)
def erase_me(body: ErasureRequest, who: OwnCitizen, app: AppDep) -> ErasureDone:
    """With your own session only (not a member platform's token). No number leads to your
    account any more, every grant ends, the times, places, devices and evidence references of
    your behaviour are deleted; the grams stay on an account without an owner, so the ledger's
    totals still hold (docs/privacy.md). It cannot be undone."""
    done = erasure.erase_pseudonym(app, who.pseudonym, "citizen", body.grounds)
    return ErasureDone(erasure=done.erasure, records=done.records)
