"""The documents of the clearing API: a platform's submission and the receipts it reads, a
citizen's token, balance, history and credit explanations, the methodologies, the oversight
statistics and health. A document that is more than a service result's fields renders one
with its `of`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from puhui.domain import consent
from puhui.domain.methodology import Cap, Methodology
from puhui.service import citizens, queries, submissions

MAX_BATCH = 10_000
MAX_PAGE = 1_000

EXAMPLE_RECORD: dict[str, JsonValue] = {
    "platform": "amap",
    "record_id": "AMAP-2026-10-000001",
    "subject": "+86 138 0013 8000",
    "scene": "bus",
    "region": "110000",
    "start": "2026-10-01T08:00:00+08:00",
    "end": "2026-10-01T08:20:00+08:00",
    "distance_km": 5,
}


class Submission(BaseModel):
    """Activity records of the signing platform (activity-record v1), settled in order.

    Each record is checked on its own: a record that breaks the contract gets a rejected
    receipt with its reasons and the others go on.
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"records": [EXAMPLE_RECORD]}]}, extra="forbid"
    )

    records: list[JsonValue] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Activity records (JSON objects with the fields of activity-record v1). "
        "An item that is not an object is answered with a `malformed_row` receipt.",
    )


class Receipt(BaseModel):
    """What became of one submitted record (activity-record v1, "Receipt")."""

    platform: str
    record_id: str | None = Field(description="Null when the record carried none.")
    status: Literal["credited", "duplicate", "rejected", "held"] = Field(
        description="`held` (v1.1): waiting for a second source or a review; it ends "
        "`credited` or `rejected`, look the receipt up again."
    )
    reason: str = Field(description="Reason codes, `;`-separated; empty when fully credited.")
    reduction_g: int = Field(
        ge=0,
        description="Grams CO2e credited to the citizen; while `held`, the grams it would credit.",
    )
    methodology: str = Field(description="id@version of the methodology, empty if rejected.")
    detail: str = ""


class SubmissionResult(BaseModel):
    """The receipts of a submission, in the order of its records."""

    batch: int = Field(
        description="Id of the batch this submission was recorded in; submissions that arrive "
        "together are settled together, in one batch."
    )
    credited_g: int = Field(description="Grams newly credited by this submission.")
    receipts: list[Receipt]

    @classmethod
    def of(cls, submitted: submissions.Submitted) -> SubmissionResult:
        return cls(
            batch=submitted.batch,
            credited_g=submitted.credited_g,
            receipts=[Receipt(**r._asdict()) for r in submitted.receipts],
        )


class StoredReceipt(Receipt):
    """A receipt as stored, with its place in receive order."""

    seq: int = Field(description="Receive order; use as `after` to read the next page.")
    received_at: datetime
    decided_at: datetime | None = Field(
        default=None,
        description="When a record that was held was decided (credited or rejected); null "
        "while it is held, and for a record never held.",
    )

    @classmethod
    def of(cls, r: queries.StoredReceipt) -> StoredReceipt:
        return cls(
            seq=r.seq,
            platform=r.platform,
            record_id=r.record_id,
            status=r.status,  # type: ignore[arg-type]  # the column's check constraint
            reason=r.reason,
            reduction_g=r.reduction_g,
            methodology=r.methodology,
            detail=r.detail,
            received_at=r.received_at,
            decided_at=r.decided_at,
        )


class ReceiptPage(BaseModel):
    """A page of receipts in receive order."""

    items: list[StoredReceipt]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end.")


class GrantOut(BaseModel):
    """A citizen's grant to a member platform."""

    id: str
    platform: str
    scopes: list[str] = Field(description="balance, history, history:all, spend")
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    state: Literal["active", "revoked", "expired"]

    @classmethod
    def of(cls, g: consent.Grant, now: datetime) -> GrantOut:
        return cls(
            id=g.id,
            platform=g.platform,
            scopes=consent.scope_text(g.scopes).split(),
            granted_at=g.granted_at,
            expires_at=g.expires_at,
            revoked_at=g.revoked_at,
            state=g.state(now).value,
        )


class BalanceOut(BaseModel):
    """The citizen's balance of verified reductions."""

    balance_g: int = Field(description="Grams CO2e.")


class AdjustedCreditOut(BaseModel):
    """One credit a `restated` movement adjusts."""

    entry_id: int | None = Field(
        description="The credit's own movement: `/v1/me/credits/{entry_id}` shows how it was "
        "computed under both versions. Null for a credit released after a check."
    )
    platform: str
    record_id: str | None = Field(description="Only for records of the token's own platform.")
    scene: str
    methodology_before: str = Field(description="id@version that computed it before.")
    methodology: str = Field(description="id@version that computes it now.")
    grams_before: int = Field(description="Grams CO2e it held before the restatement.")
    grams: int = Field(description="Grams CO2e it holds now (caps re-applied).")
    happened_at: datetime | None = Field(description="When the behaviour began.")


class AdjustmentOut(BaseModel):
    """What a `restated` movement adjusts: credits of one platform computed again under a
    corrected methodology version, their net change posted as one movement."""

    restatement: int = Field(description="The restatement (`/v1/oversight/restatements`).")
    methodology_before: list[str] = Field(description="The versions corrected (id@version).")
    methodology: str = Field(description="The correcting version (id@version).")
    delta_g: int = Field(
        description="The credits' net change in grams; `amount` is less when the account held "
        "less than a decrease (it never goes below zero)."
    )
    credits: list[AdjustedCreditOut]


class MovementOut(BaseModel):
    """One movement of the citizen's account: grams CO2e, or points of one programme."""

    entry_id: int
    at: datetime = Field(description="When it was booked.")
    kind: str = Field(
        description=(
            "credit, release, redeem, retire, transfer, reversal, award, award_reversal, "
            "expire, certify, certify_points, restated (a correction of a methodology restated "
            "credits: see `adjustment`)"
        )
    )
    amount: int = Field(description="In `unit`: added (+) or taken (−).")
    unit: Literal["g", "pt"]
    programme: str | None = Field(description="For points: the programme.")
    platform: str
    scene: str
    methodology: str
    record_id: str | None = Field(description="Only for records of the token's own platform.")
    happened_at: datetime | None = Field(
        description="For a credit, when the behaviour began (`at` is when it was booked)."
    )
    adjustment: AdjustmentOut | None = Field(
        default=None, description="For a `restated` movement: the credits it adjusts."
    )


class HistoryPage(BaseModel):
    """Movements, newest first."""

    items: list[MovementOut]
    next_before: int | None = Field(description="Pass as `before` for older movements.")


class FactorOut(BaseModel):
    """A factor or parameter used in a calculation, with its provenance."""

    name: str
    value: str
    unit: str
    evidence: str = Field(description="FOUND, DERIVED or ESTIMATE.")
    source: str
    region_asked: str | None = None
    region_used: str | None = None
    region_level: str | None = None
    derivation: str | None = None


class RestatedCalculationOut(BaseModel):
    """How a credit was computed again when a correction of its methodology restated it."""

    restatement: int = Field(description="The restatement (`/v1/oversight/restatements`).")
    at: datetime = Field(description="When it was restated.")
    methodology: str = Field(description="id@version of the correcting version.")
    baseline_formula: str
    project_formula: str
    reduction_per_unit_g: str
    factors: list[FactorOut]
    computed_g: int | None = Field(
        description="The amount times the reduction per unit, in whole grams, before caps."
    )
    grams_before: int = Field(description="Grams CO2e the credit held before.")
    grams: int = Field(description="Grams CO2e it holds after (caps re-applied).")

    @classmethod
    def of(cls, r: queries.RestatedCalculation) -> RestatedCalculationOut:
        return cls(
            restatement=r.restatement,
            at=r.at,
            methodology=r.methodology,
            baseline_formula=str(r.trace.get("baseline_formula", "")),
            project_formula=str(r.trace.get("project_formula", "")),
            reduction_per_unit_g=str(r.trace.get("reduction_g", "")),
            factors=[FactorOut(**n) for n in r.trace.get("names", [])],
            computed_g=r.computed_g,
            grams_before=r.grams_before,
            grams=r.grams,
        )


class CreditExplanation(BaseModel):
    """How one credit was computed: methodology, formulas, factors and their sources; and,
    when a correction of its methodology restated it, how it was computed again."""

    entry_id: int
    platform: str
    record_id: str | None = Field(description="Only for records of the token's own platform.")
    scene: str
    region: str
    material: str
    start: datetime | None
    amount: str | None = Field(description="Activity amount in `unit`, exact decimal.")
    unit: str
    methodology: str
    baseline_formula: str
    project_formula: str
    reduction_per_unit_g: str
    factors: list[FactorOut]
    reduction_g: int = Field(description="Grams CO2e credited when it was received.")
    restatements: list[RestatedCalculationOut] = Field(
        default_factory=list,
        description="Each restatement of the credit, oldest first, with its calculation under "
        "the correcting version; the last one's `grams` are what the credit holds now. Empty "
        "when it was never restated.",
    )

    @classmethod
    def of(
        cls, entry_id: int, citizen: citizens.Citizen, e: queries.Explanation
    ) -> CreditExplanation:
        trace = e.trace or {}
        return cls(
            entry_id=entry_id,
            platform=e.platform,
            record_id=e.record_id if e.platform == citizen.platform else None,
            scene=e.scene,
            region=e.region,
            material=e.material,
            start=e.start,
            amount=None if e.amount is None else str(e.amount),
            unit=e.unit,
            methodology=str(trace.get("methodology", "")),
            baseline_formula=str(trace.get("baseline_formula", "")),
            project_formula=str(trace.get("project_formula", "")),
            reduction_per_unit_g=str(trace.get("reduction_g", "")),
            factors=[FactorOut(**n) for n in trace.get("names", [])],
            reduction_g=e.reduction_g,
            restatements=[RestatedCalculationOut.of(r) for r in e.restated],
        )


class PlatformOut(BaseModel):
    """A member platform and what it submitted."""

    code: str
    name: str
    registered_at: datetime
    credited: int
    duplicate: int
    rejected: int
    credited_g: int


class CapOut(BaseModel):
    """A limit per citizen, scene and period."""

    period: Literal["day", "month"]
    max_g: int | None
    max_count: int | None

    @classmethod
    def of(cls, c: Cap) -> CapOut:
        period: Literal["day", "month"] = "day" if c.period == "day" else "month"
        return cls(period=period, max_g=c.max_g, max_count=c.max_count)


class SceneRuleOut(BaseModel):
    """How a methodology quantifies one scene: ER = BE − PE per unit."""

    scene: str
    unit: str
    baseline_formula: str
    project_formula: str
    caps: list[CapOut]


class ParameterOut(BaseModel):
    """A constant of a methodology, with its provenance."""

    name: str
    value: str
    unit: str
    evidence: str
    source: str


class MethodologyOut(BaseModel):
    """One version of a methodology."""

    id: str
    version: str
    ref: str = Field(description="id@version, as receipts show it.")
    title: str
    title_zh: str
    issuer: str
    status: str
    effective_from: date
    effective_to: date | None
    jurisdiction: list[str]
    official_code: str
    description: str
    scenes: list[SceneRuleOut]
    parameters: list[ParameterOut]
    references: list[str]

    @classmethod
    def of(cls, m: Methodology) -> MethodologyOut:
        return cls(
            id=m.id,
            version=m.version,
            ref=m.ref,
            title=m.title,
            title_zh=m.title_zh,
            issuer=m.issuer,
            status=str(m.status),
            effective_from=m.effective_from,
            effective_to=m.effective_to,
            jurisdiction=list(m.jurisdiction),
            official_code=m.official_code,
            description=m.description,
            scenes=[
                SceneRuleOut(
                    scene=r.scene,
                    unit=r.unit,
                    baseline_formula=r.baseline.source,
                    project_formula=r.project.source,
                    caps=[CapOut.of(c) for c in r.caps],
                )
                for r in m.scenes.values()
            ],
            parameters=[
                ParameterOut(
                    name=p.name,
                    value=str(p.value),
                    unit=p.unit,
                    evidence=str(p.evidence),
                    source=p.source,
                )
                for p in m.parameters.values()
            ],
            references=list(m.references),
        )


class ReductionOut(BaseModel):
    """Credited reductions of one region, scene, platform or day."""

    key: str
    credited_g: int
    records: int
    participants: int = Field(description="Distinct citizens.")


class OutcomeOut(BaseModel):
    """Records of one platform with one status and reason."""

    platform: str
    status: str
    reason: str
    records: int


class PairOut(BaseModel):
    """Duplicates `platform` reported of behaviours first received from `first_from`."""

    platform: str
    first_from: str
    reason: str
    records: int


SUPPRESSED = (
    "True when the figure describes fewer than the smallest number of citizens that may be "
    "published (or is suppressed so that such a figure cannot be worked out from a total): "
    "its figures are then null."
)


class PublishedReductionOut(BaseModel):
    """Credited reductions of one region, province, scene, platform, day or month, as anyone
    may read them."""

    key: str
    credited_g: int | None
    records: int | None
    participants: int | None = Field(description="Distinct citizens.")
    suppressed: bool = Field(description=SUPPRESSED)


class PublishedTotalsOut(BaseModel):
    """Everything credited, as anyone may read it."""

    credited_g: int | None
    records: int | None = Field(description="Credited records.")
    participants: int | None = Field(description="Distinct citizens credited.")
    platforms: int = Field(description="Member platforms that credited.")
    received: int | None = Field(description="Records received, whatever their receipt.")
    suppressed: bool = Field(description=SUPPRESSED)
    min_cell: int = Field(description="The fewest distinct citizens a published figure describes.")


class PublishedOutcomeOut(BaseModel):
    """Records found duplicate or rejected for one reason, over every platform, as anyone may
    read them."""

    status: str
    reason: str
    records: int | None
    suppressed: bool = Field(description=SUPPRESSED)


class RestatementOut(BaseModel):
    """A restatement: the credits of corrected methodology versions computed again under the
    version correcting them, and the differences posted (`puhui methodology restate`)."""

    id: int
    methodology: str = Field(description="The correcting version (id@version).")
    superseded: list[str] = Field(description="The versions it restates (id@version).")
    actor: str
    started_at: datetime
    finished_at: datetime | None = Field(
        description="Null while it is resumable: some citizens' credits wait for held records "
        "to be decided, or a run stopped halfway."
    )
    credits: int = Field(description="Credits whose grams changed.")
    recorded: int = Field(description="Credits restated, whether or not their grams changed.")
    increased_g: int = Field(description="Grams added to credits that increased.")
    decreased_g: int = Field(description="Grams taken from credits that decreased.")
    posted_g: int = Field(description="Grams moved on the ledger, signed.")
    shortfall_g: int = Field(
        description="Decreases not posted: an account or buffer held less than them."
    )

    @classmethod
    def of(cls, r: dict[str, Any]) -> RestatementOut:
        finished = r["finished_at"]
        return cls.model_validate(
            {
                **r,
                "started_at": queries.aware(r["started_at"]),
                "finished_at": None if finished is None else queries.aware(finished),
            }
        )


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok"]
