"""Routes of operators running personal carbon accounts (an operator's bearer token): points
programmes, rewards and their coupon codes, reversals, and the scheduled jobs. Each calls one
use case of `puhui.service.wallet`, as the command line does.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as Path_

from puhui.entrypoints.api.deps import AppDep, IdempotencyKey, OperatorDep
from puhui.entrypoints.api.wallet_schemas import (
    CodesIn,
    CodesOut,
    JobsOut,
    OperationOut,
    ProgrammeIn,
    ProgrammeOut,
    ReversalIn,
    RewardIn,
    RewardOut,
)
from puhui.entrypoints.http import problem_doc
from puhui.service import review, wallet

router = APIRouter(
    tags=["oversight"],
    responses={
        401: problem_doc("No valid operator token."),
        403: problem_doc("Needs the operator role."),
        404: problem_doc(),
        409: problem_doc(),
    },
)


@router.post(
    "/v1/oversight/programmes",
    response_model=ProgrammeOut,
    summary="Define a points programme (operators)",
)
def add_programme(body: ProgrammeIn, who: OperatorDep, app: AppDep) -> ProgrammeOut:
    """Credits from `starts_at` (now by default) earn points when the jobs run."""
    return ProgrammeOut.of(
        wallet.add_programme(
            app,
            body.code,
            body.name,
            body.points_per_kg,
            body.expiry_days,
            body.platform,
            starts_at=body.starts_at,
        )
    )


@router.post(
    "/v1/oversight/rewards",
    response_model=RewardOut,
    summary="Put a reward in the catalogue (operators)",
)
def add_reward(body: RewardIn, who: OperatorDep, app: AppDep) -> RewardOut:
    """A coupon's stock is the codes uploaded for it."""
    fields = body.model_dump(exclude={"code", "name", "kind", "issuer"})
    return RewardOut.of(
        wallet.add_reward(app, body.code, body.name, body.kind, body.issuer, **fields)
    )


@router.post(
    "/v1/oversight/rewards/{code}/codes",
    response_model=CodesOut,
    summary="Add coupon codes (operators)",
)
def add_codes(
    code: Annotated[str, Path_(max_length=64)], body: CodesIn, who: OperatorDep, app: AppDep
) -> CodesOut:
    """Each code is handed out once, in upload order; codes already there are skipped."""
    added = wallet.add_codes(app, code, body.codes)
    return CodesOut(added=added, remaining=wallet.get_reward(app, code).remaining)


@router.post(
    "/v1/oversight/reversals",
    response_model=OperationOut,
    summary="Reverse a credit, a redemption or a gift (operators)",
)
def reverse(body: ReversalIn, who: OperatorDep, key: IdempotencyKey, app: AppDep) -> OperationOut:
    """The mirror entry is posted; nothing is edited. A credit's points go with it."""
    return OperationOut.of(wallet.reverse(app, body.entry, key, f"staff:{who.name}", body.reason))


@router.post(
    "/v1/oversight/jobs",
    response_model=JobsOut,
    summary="Run the scheduled jobs now (operators)",
)
def run_jobs(who: OperatorDep, app: AppDep) -> JobsOut:
    """End the held records whose corroboration window is over, award points for new credits,
    expire points past their validity. Idempotent."""
    ended = review.expire_held(app)
    return JobsOut(held_ended=len(ended), **dataclasses.asdict(wallet.run_jobs(app)))
