"""Routes of operators and regulators (a staff bearer token): the member platforms and what
each submitted, the statistics of reductions, outcomes and duplicates, and the restatements of
credits to corrected methodology versions.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from puhui.entrypoints.api.deps import AppDep, OperatorDep, StaffDep
from puhui.entrypoints.api.schemas import (
    OutcomeOut,
    PairOut,
    PlatformOut,
    ReductionOut,
    RestatementOut,
)
from puhui.entrypoints.http import problem_doc
from puhui.service import admin, oversight, queries, restatement

router = APIRouter(
    tags=["oversight"],
    responses={
        401: problem_doc("No valid operator or regulator token."),
        403: problem_doc("The token's role may not read this."),
    },
)

Window = Annotated[
    date | None, Query(description="Behaviours that started on or after this day (UTC+8).")
]
WindowEnd = Annotated[
    date | None, Query(description="Behaviours that started before this day (UTC+8).")
]


@router.get(
    "/v1/oversight/platforms",
    response_model=list[PlatformOut],
    summary="Member platforms and what each submitted (operators)",
)
def oversight_platforms(operator: OperatorDep, app: AppDep) -> list[PlatformOut]:
    """Stored records by status and grams credited, per platform."""
    return [
        PlatformOut(
            code=p.code,
            name=p.name,
            registered_at=queries.aware(p.created_at),
            credited=p.credited,
            duplicate=p.duplicate,
            rejected=p.rejected,
            credited_g=p.credited_g,
        )
        for p in admin.list_platforms(app)
    ]


@router.get(
    "/v1/oversight/reductions",
    response_model=list[ReductionOut],
    summary="Reductions, records and participants by region, scene, platform or day",
)
def oversight_reductions(
    staff: StaffDep,
    app: AppDep,
    by: oversight.Dimension,
    day_from: Window = None,
    day_to: WindowEnd = None,
) -> list[ReductionOut]:
    """Credited grams, credited records and distinct citizens."""
    rows = oversight.reductions(app, by, day_from, day_to)
    return [ReductionOut(**dataclasses.asdict(r)) for r in rows]


@router.get(
    "/v1/oversight/outcomes",
    response_model=list[OutcomeOut],
    summary="Records by platform, status and reason",
)
def oversight_outcomes(
    staff: StaffDep, app: AppDep, day_from: Window = None, day_to: WindowEnd = None
) -> list[OutcomeOut]:
    """Rejections and duplicates by reason code, per platform."""
    rows = oversight.outcomes(app, day_from, day_to)
    return [OutcomeOut(**dataclasses.asdict(r)) for r in rows]


@router.get(
    "/v1/oversight/duplicate-pairs",
    response_model=list[PairOut],
    summary="Who reports the same behaviours as whom",
)
def oversight_pairs(
    staff: StaffDep, app: AppDep, day_from: Window = None, day_to: WindowEnd = None
) -> list[PairOut]:
    """Duplicates by reporting platform and the platform received first, with the reason."""
    rows = oversight.duplicate_pairs(app, day_from, day_to)
    return [PairOut(**dataclasses.asdict(r)) for r in rows]


@router.get(
    "/v1/oversight/restatements",
    response_model=list[RestatementOut],
    summary="Restatements of credits to corrected methodology versions",
)
def oversight_restatements(staff: StaffDep, app: AppDep) -> list[RestatementOut]:
    """Each restatement, oldest first: the correcting version, the versions it restates,
    credits changed, grams increased and decreased, grams posted and the shortfall, when it
    started and finished (null: resumable)."""
    return [RestatementOut.of(r) for r in restatement.restatements(app)]
