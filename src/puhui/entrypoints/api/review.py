"""Routes of the review queue (spec v1.1, `service.review_queue`): operators list the held
records with why each was held and what every source reported around it, release or reject
them with a reason, and settle the policies' timeouts; operators and regulators read each
platform's review rates.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query
from fastapi import Path as Path_
from pydantic import BaseModel, Field, model_validator

from puhui.domain.review import Decision
from puhui.domain.scenes import SCENES
from puhui.entrypoints.api.deps import AppDep, OperatorDep, StaffDep
from puhui.entrypoints.http import problem_doc
from puhui.service import review_queue
from puhui.service.review_queue import HELD_REASONS, MAX_NOTE, MAX_PAGE, MAX_SEQ

router = APIRouter(
    tags=["oversight"],
    responses={
        401: problem_doc("No valid operator or regulator token."),
        403: problem_doc("The token's role may not do this."),
    },
)

HeldReason = Literal[
    "awaiting_corroboration",
    "review_required",
    "device_shared",
    "device_hopping",
    "velocity",
    "volume_outlier",
    "burst",
    "repeated_trip",
]
assert set(get_args(HeldReason)) == {r.value for r in HELD_REASONS}
Scene = Literal[
    "walk", "bike", "bus", "metro", "ev", "recycling", "paperless", "no_cutlery", "electricity"
]  # fmt: skip
assert set(get_args(Scene)) == set(SCENES)
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]


class FindingOut(BaseModel):
    """Why a record is held, in one reason's words."""

    code: str = Field(description="The reason code (docs/reasons.md).", examples=["velocity"])
    means: str = Field(description="What the code means.")
    why: str = Field(
        description="How the signal, or the evidence policy, reads on this record.",
        examples=["the citizen would have travelled 1 210 km/h between two trips (limit 800)"],
    )
    measured: list[int | None] = Field(description="What the signal measured (may be empty).")


class RecordRefOut(BaseModel):
    """A record by its platform and the platform's id for it."""

    platform: str
    record_id: str


class HeldOut(BaseModel):
    """A held record in the review queue: the record, why it was held and, once decided, how it
    ended. No identifier of the citizen or of a device is ever shown."""

    seq: int = Field(description="Receive order; pass as `after` for the next page.")
    platform: str
    record_id: str
    scene: str
    region: str
    start: datetime | None = Field(description="When the behaviour began (China time).")
    end: datetime | None = Field(description="When the trip ended (China time); null for events.")
    amount: Decimal | None = Field(description="Distance or quantity, in `unit`.")
    unit: str = Field(description="km for trips, the scene's unit for events.")
    reduction_g: int = Field(
        description="The receipt's grams: pending while held, credited, or 0 when rejected."
    )
    grams: int = Field(description="The grams it was held with (what it would credit).")
    status: Literal["held", "credited", "rejected"]
    reasons: list[str] = Field(description="The codes it was held for, in order.")
    findings: list[FindingOut]
    evidence: dict[str, dict[str, Any]] = Field(
        description="The stored evidence by code: `why` and `measured`."
    )
    policy: str | None = Field(description="The evidence policy it waits under, if any.")
    held_at: datetime
    until: datetime | None = Field(description="End of the policy's corroboration window.")
    corroborated_by: RecordRefOut | None = Field(
        description="The authority's record of the same behaviour, once one came."
    )
    decided_at: datetime | None
    outcome: Literal["credited", "rejected"] | None
    outcome_reason: str | None = Field(
        description="corroborated, released, credited_uncorroborated, rejected_on_review or "
        "not_corroborated."
    )
    decided_by: str | None = Field(description="The reviewer, the policy, or `corroboration`.")
    note: str | None = Field(description="The reviewer's reason.")

    @classmethod
    def of(cls, h: review_queue.Held) -> HeldOut:
        return cls(
            seq=h.seq,
            platform=h.platform,
            record_id=h.record_id,
            scene=h.scene,
            region=h.region,
            start=h.start,
            end=h.end,
            amount=h.amount,
            unit=h.unit,
            reduction_g=h.reduction_g,
            grams=h.grams,
            status=h.status,  # type: ignore[arg-type]  # a held record's statuses
            reasons=h.reasons,
            findings=[
                FindingOut(code=f.code, means=f.means, why=f.why, measured=f.measured)
                for f in h.findings
            ],
            evidence=h.evidence,
            policy=h.policy,
            held_at=h.held_at,
            until=h.until,
            corroborated_by=None
            if h.corroborated_by is None
            else RecordRefOut(
                platform=h.corroborated_by.platform, record_id=h.corroborated_by.record_id
            ),
            decided_at=h.decided_at,
            outcome=h.outcome,  # type: ignore[arg-type]  # the column's check constraint
            outcome_reason=h.outcome_reason,
            decided_by=h.decided_by,
            note=h.note,
        )


class ReviewPage(BaseModel):
    """A page of the review queue, in receive order."""

    items: list[HeldOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end.")


class RelatedOut(BaseModel):
    """A record of the same citizen, from any platform, beside a held one."""

    platform: str
    record_id: str
    scene: str
    region: str
    start: datetime | None
    end: datetime | None
    amount: Decimal | None
    unit: str
    status: str
    reason: str
    duplicate: bool = Field(description="Found a duplicate of the held record.")

    @classmethod
    def of(cls, r: review_queue.Related) -> RelatedOut:
        return cls(
            platform=r.platform,
            record_id=r.record_id,
            scene=r.scene,
            region=r.region,
            start=r.start,
            end=r.end,
            amount=r.amount,
            unit=r.unit,
            status=r.status,
            reason=r.reason,
            duplicate=r.duplicate,
        )


class HeldDetailOut(BaseModel):
    """A held record with the evidence of each source."""

    held: HeldOut
    related: list[RelatedOut] = Field(
        description="The citizen's records starting within 12 hours of it, any platform's, in "
        "start order."
    )
    corroboration: RelatedOut | None = Field(description="The authority's record, if one came.")
    device_citizens: int | None = Field(
        description="Held as device_shared: how many citizens its device reported behaviours "
        "of within `device_window_hours` of it (the device itself is never shown)."
    )
    device_window_hours: int


class DecisionIn(BaseModel):
    """A reviewer's decision on held records."""

    seqs: list[Seq] = Field(min_length=1, max_length=MAX_PAGE, examples=[[1042, 1043]])
    decision: Literal["release", "reject"] = Field(
        description="release: credit the grams; reject: return them to the issuer."
    )
    reason: str = Field(
        max_length=MAX_NOTE,
        description="Why: required, kept with the decision.",
        examples=["the citizen's card taps confirm the ride"],
    )

    @model_validator(mode="before")
    @classmethod
    def _needs_a_reason(cls, data: Any) -> Any:
        if isinstance(data, dict):
            reason = data.get("reason")
            if reason is None or (isinstance(reason, str) and not reason.strip()):
                raise ValueError(
                    "a decision needs a reason: say why these records are released or rejected"
                )
        return data


class DecidedOut(BaseModel):
    """What a decision did."""

    decided: list[int] = Field(description="The records it ended.")
    skipped: list[int] = Field(description="Decided already, never held, or unknown.")


class ExpiredOut(BaseModel):
    """Held records ended by their policy's timeout."""

    ended: list[int]


class RatesOut(BaseModel):
    """How one platform's records fare under review."""

    platform: str
    records: int = Field(description="Its stored records, whatever their receipt.")
    held: int = Field(description="Its records ever held.")
    open: int = Field(description="Held now.")
    corroborated: int
    released: int
    rejected_on_review: int
    not_corroborated: int
    credited_uncorroborated: int
    reviewed: int = Field(description="Held records decided by reviewers.")
    rejected_share: float | None = Field(
        description="Of those decided by reviewers, the share rejected; null before any."
    )
    flagged: bool = Field(
        description=f"Rejected on review in {review_queue.FLAG_SHARE:.0%} or more of at least "
        f"{review_queue.FLAG_MIN_DECIDED} reviewed records."
    )

    @classmethod
    def of(cls, r: review_queue.Rates) -> RatesOut:
        return cls(
            platform=r.platform,
            records=r.records,
            held=r.held,
            open=r.open,
            corroborated=r.corroborated,
            released=r.released,
            rejected_on_review=r.rejected_on_review,
            not_corroborated=r.not_corroborated,
            credited_uncorroborated=r.credited_uncorroborated,
            reviewed=r.reviewed,
            rejected_share=r.rejected_share,
            flagged=r.flagged,
        )


@router.get(
    "/v1/oversight/review",
    response_model=ReviewPage,
    summary="The review queue of held records (operators)",
)
def review_list(
    operator: OperatorDep,
    app: AppDep,
    platform: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    reason: Annotated[HeldReason | None, Query(description="Held for this reason.")] = None,
    scene: Annotated[Scene | None, Query()] = None,
    region: Annotated[
        str | None,
        Query(pattern="^[0-9]{2,6}$", description="A region code or its prefix (4403: Shenzhen)."),
    ] = None,
    state: Annotated[
        Literal["open", "decided", "all"], Query(description="Open (default), decided or all.")
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Records after this `seq`.")] = 0,
) -> ReviewPage:
    """Oldest first (receive order), each with why it was held: every signal's reading."""
    items = review_queue.queue(
        app,
        platform=platform,
        reason=reason,
        scene=scene,
        region=region,
        state=review_queue.State(state),
        limit=limit,
        after=after,
    )
    return ReviewPage(
        items=[HeldOut.of(h) for h in items],
        next_after=items[-1].seq if len(items) == limit else None,
    )


@router.get(
    "/v1/oversight/review/{seq}",
    response_model=HeldDetailOut,
    responses={404: problem_doc("No record with this number was ever held.")},
    summary="A held record and what every source reported around it (operators)",
)
def review_item(
    seq: Annotated[int, Path_(ge=1, le=MAX_SEQ)], operator: OperatorDep, app: AppDep
) -> HeldDetailOut:
    """The citizen's records from every platform starting within 12 hours of it, the
    authority's record that corroborated it, and for a shared device how many citizens used
    it; never an identifier."""
    found = review_queue.item(app, seq)
    return HeldDetailOut(
        held=HeldOut.of(found.held),
        related=[RelatedOut.of(r) for r in found.related],
        corroboration=None if found.corroboration is None else RelatedOut.of(found.corroboration),
        device_citizens=found.device_citizens,
        device_window_hours=found.device_window_hours,
    )


@router.post(
    "/v1/oversight/review/decisions",
    response_model=DecidedOut,
    responses={422: problem_doc("No reason, or not a valid decision.")},
    summary="Release or reject held records (operators)",
)
def review_decide(body: DecisionIn, operator: OperatorDep, app: AppDep) -> DecidedOut:
    """Released records are credited, rejected ones give their grams back to the issuer; the
    reason and the operator's name are kept with each. A record decided already, never held
    or unknown is skipped."""
    done = review_queue.decide(app, body.seqs, Decision(body.decision), operator.name, body.reason)
    return DecidedOut(decided=done.decided, skipped=done.skipped)


@router.post(
    "/v1/oversight/review/expire",
    response_model=ExpiredOut,
    summary="End the held records whose corroboration window is over (operators)",
)
def review_expire(operator: OperatorDep, app: AppDep) -> ExpiredOut:
    """As their policies say: rejected (`not_corroborated`) or credited
    (`credited_uncorroborated`). A record that also waits for a reviewer stays."""
    return ExpiredOut(ended=review_queue.expire(app))


@router.get(
    "/v1/oversight/review-rates",
    response_model=list[RatesOut],
    summary="Each platform's held records and how they ended",
)
def review_rates(staff: StaffDep, app: AppDep) -> list[RatesOut]:
    """Per platform: records, held (ever and now), corroborated, released, rejected on review,
    not corroborated; flagged when reviewers reject too many of its records."""
    return [RatesOut.of(r) for r in review_queue.rates(app)]
