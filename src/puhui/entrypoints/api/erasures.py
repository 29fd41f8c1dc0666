"""Routes of erasure (`domain.erasure`): an operator erases a citizen on a request whose
identity was verified outside puhui; operators and regulators see every erasure made."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, StringConstraints

from puhui.entrypoints.api.deps import AppDep, OperatorDep, StaffDep
from puhui.entrypoints.http import problem_doc
from puhui.service import erasure, queries

router = APIRouter(
    tags=["oversight"],
    responses={
        401: problem_doc("No valid operator or regulator token."),
        403: problem_doc("The token's role may not do this."),
    },
)


class ErasureIn(BaseModel):
    """Whom to erase, and on what grounds."""

    subject: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The citizen's mobile number or resident ID number; pseudonymised at once, "
        "never stored.",
        examples=["+86 139 1234 5678"],
    )
    grounds: Annotated[str, StringConstraints(min_length=1, max_length=erasure.MAX_GROUNDS)] = (
        Field(
            description="Why: the reference of the verified request. Never an identifier.",
            examples=["request 2026-117, identity checked at the Beijing counter"],
        )
    )


class ErasureOut(BaseModel):
    """An erasure made."""

    erasure: int
    at: datetime
    by: str = Field(description="citizen or operator")
    grounds: str
    records: int = Field(description="Records whose behaviour details were deleted.")


@router.post(
    "/v1/oversight/erasures",
    response_model=ErasureOut,
    status_code=201,
    responses={404: problem_doc("puhui holds no account for this citizen."), 422: problem_doc()},
    summary="Erase a citizen, on a verified request (operators)",
)
def erase(body: ErasureIn, operator: OperatorDep, app: AppDep) -> ErasureOut:
    """No number leads to the account any more; the behaviour details of the citizen's records
    (times of day, coordinates, device, evidence references) are deleted; the grams stay on an
    account without an owner, so the ledger's totals still hold. It cannot be undone."""
    done = erasure.erase_subject(app, body.subject, "operator", body.grounds)
    return ErasureOut(
        erasure=done.erasure,
        at=queries.aware(done.at),
        by="operator",
        grounds=body.grounds.strip(),
        records=done.records,
    )


@router.get(
    "/v1/oversight/erasures",
    response_model=list[ErasureOut],
    summary="Every erasure made, oldest first",
)
def erasures(staff: StaffDep, app: AppDep) -> list[ErasureOut]:
    """When, by whom and on what grounds; no identifier is kept."""
    return [
        ErasureOut(erasure=i, at=queries.aware(at), by=by, grounds=g, records=n)
        for i, at, by, g, n in app.erasures().erasures()
    ]
