"""HTTP routes of personal carbon accounts: rewards, redemptions, retirements against one's own
footprint, gifts, certificates (citizens); programmes, rewards, coupon codes, reversals and the
scheduled jobs (operators). Each route calls one use case of `puhui.service.wallet`, as the
command line does.

Every operation takes an `Idempotency-Key` header: sent again with the same key, it answers
with the first result (`replayed: true`) and changes nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Response
from fastapi import Path as Path_
from pydantic import BaseModel, Field, JsonValue

from puhui.bootstrap import App
from puhui.domain import footprints
from puhui.domain.errors import InputError
from puhui.entrypoints.http import citizen, platform, problem_doc, require, staff
from puhui.service import certificates, citizens, oversight, queries, wallet

MAX_CODES = 10_000
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=wallet.MAX_KEY,
        pattern=r"^[\x21-\x7e]+$",
        description="Chosen by the client, unique per operation: a retry with the same key "
        "returns the first answer and changes nothing.",
    ),
]


Citizen = Annotated[citizens.Citizen, Depends(citizen)]
Staff = Annotated[oversight.Staff, Depends(staff)]
Platform = Annotated[str, Depends(platform)]


class HoldingsOut(BaseModel):
    """What a citizen holds. Grams CO2e and points are different things and never added up."""

    balance_g: int = Field(description="Verified reductions, grams CO2e, to spend or retire.")
    retired_g: int = Field(0, description="Grams retired against your own footprint, for good.")
    points: dict[str, int] = Field(
        default_factory=dict, description="Points by programme: an incentive, not CO2e."
    )


class RewardOut(BaseModel):
    """A reward of the catalogue."""

    code: str
    name: str
    kind: Literal["coupon", "tree", "donation"]
    issuer: str
    project: str | None
    price: int = Field(description="In `unit`.")
    unit: Literal["g", "pt"]
    programme: str | None = Field(description="Whose points pay for it, when priced in points.")
    remaining: int | None = Field(description="Left; null: unlimited.")
    per_citizen_limit: int | None
    valid_from: datetime | None
    valid_to: datetime | None


class ProgrammeOut(BaseModel):
    """A points programme."""

    code: str
    name: str
    platform: str | None = Field(description="The platform running it; null: the exchange.")
    points_per_kg: Decimal
    expiry_days: int | None
    starts_at: datetime


class RedemptionIn(BaseModel):
    """A reward to redeem."""

    reward: str = Field(min_length=1, max_length=64, examples=["saxaul-alxa"])


class FootprintIn(BaseModel):
    """A footprint of one's own: kWh of household electricity, or km driven in a petrol car."""

    kind: Literal["electricity", "car"]
    amount: Decimal = Field(gt=0, le=100_000, description="kWh, or km.", examples=["120"])
    region: str = Field("CN", pattern=r"^(CN|[0-9]{6})$", description="GB/T 2260 code or CN.")


class RetirementIn(BaseModel):
    """Grams to retire, or a footprint to offset (its grams are retired), or both."""

    grams: int | None = Field(None, ge=1, le=10**12)
    footprint: FootprintIn | None = None


class GiftIn(BaseModel):
    """A gift to another citizen, named by the identifier your platform knows them by."""

    to: str = Field(min_length=1, max_length=64, description="Mobile or resident ID number.")
    amount: int = Field(ge=1, le=10**12, description="Grams, or points with `programme`.")
    programme: str | None = Field(None, max_length=64)


class OperationOut(BaseModel):
    """What an operation did; the same answer for a retry with the same key."""

    operation: int
    kind: Literal["redeem", "retire", "transfer", "reverse"]
    replayed: bool = Field(description="True when this answers a retry of a done operation.")
    result: dict[str, JsonValue]


class OperationLine(BaseModel):
    """One operation of the audit trail."""

    operation: int
    kind: str
    actor: str
    at: datetime
    result: dict[str, JsonValue]


class FootprintOut(BaseModel):
    """A footprint and how it was computed."""

    grams: int
    footprint: dict[str, JsonValue]
    explanation: list[str]


class CertificateOut(BaseModel):
    """A verified certificate."""

    certificate: str
    kind: Literal["retirement", "tree"]
    issued_at: datetime
    result: dict[str, JsonValue]


class PlatformProgrammeIn(BaseModel):
    """A new points programme of the signing platform: only its records earn these points."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    points_per_kg: Decimal = Field(gt=0, le=1_000_000, decimal_places=6)
    expiry_days: int | None = Field(None, ge=1, le=36_500)
    starts_at: datetime | None = None


class ProgrammeIn(PlatformProgrammeIn):
    """A new points programme, the exchange's or a platform's."""

    platform: str | None = Field(None, max_length=64)


class RewardIn(BaseModel):
    """A new reward."""

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["coupon", "tree", "donation"]
    issuer: str = Field(min_length=1, max_length=200)
    project: str | None = Field(None, max_length=200)
    price_g: int | None = Field(None, ge=1, le=10**12)
    price_points: int | None = Field(None, ge=1, le=10**12)
    programme: str | None = Field(None, max_length=64)
    stock: int | None = Field(None, ge=0, le=10**9)
    per_citizen_limit: int | None = Field(None, ge=1, le=10**6)
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class CodesIn(BaseModel):
    """Coupon codes to add to a coupon's pool."""

    codes: list[str] = Field(min_length=1, max_length=MAX_CODES)


class CodesOut(BaseModel):
    """The pool after an upload."""

    added: int
    remaining: int | None


class ReversalIn(BaseModel):
    """An entry to reverse, and why."""

    entry: int = Field(ge=1, le=2**63 - 1)
    reason: str = Field(min_length=1, max_length=500)


class JobsOut(BaseModel):
    """What a run of the scheduled jobs did."""

    awarded_points: int
    awarded_credits: int
    expired_points: int
    expired_accounts: int


def install(api: FastAPI, app: App) -> None:
    """Add the personal-account routes to the application."""
    citizen_errors: dict[int | str, dict[str, Any]] = {
        401: problem_doc("No valid citizen token."),
        404: problem_doc(),
        409: problem_doc("Refused: insufficient_balance, out_of_stock, limit_reached, …"),
    }
    operator_errors: dict[int | str, dict[str, Any]] = {
        401: problem_doc("No valid operator token."),
        403: problem_doc("Needs the operator role."),
        404: problem_doc(),
        409: problem_doc(),
    }

    @api.get(
        "/v1/me/holdings",
        response_model=HoldingsOut,
        tags=["citizen"],
        responses=citizen_errors,
        summary="Your grams, retired grams and points",
    )
    def my_holdings(who: Citizen) -> HoldingsOut:
        """Grams CO2e and points apart: grams are verified reductions, points an incentive."""
        return HoldingsOut(**dataclasses.asdict(wallet.holdings(app, who.pseudonym)))

    @api.get(
        "/v1/me/operations",
        response_model=list[OperationLine],
        tags=["citizen"],
        responses=citizen_errors,
        summary="Your redemptions, retirements, gifts and reversals, newest first",
    )
    def my_operations(who: Citizen) -> list[OperationLine]:
        """The last 100, with what each did."""
        return [
            OperationLine(**dataclasses.asdict(o))
            for o in wallet.operations(app, who.pseudonym, 100)
        ]

    @api.post(
        "/v1/me/redemptions",
        response_model=OperationOut,
        tags=["citizen"],
        responses=citizen_errors,
        summary="Redeem a reward",
    )
    def redeem(body: RedemptionIn, who: Citizen, key: IdempotencyKey) -> OperationOut:
        """Pays the price from your grams or points; a coupon answers with its code, a tree with
        its number and certificate."""
        return _outcome(wallet.redeem(app, who.pseudonym, body.reward, key, _actor(who)))

    @api.post(
        "/v1/me/retirements",
        response_model=OperationOut,
        tags=["citizen"],
        responses=citizen_errors,
        summary="Retire grams against your own footprint",
    )
    def retire(body: RetirementIn, who: Citizen, key: IdempotencyKey) -> OperationOut:
        """Retired grams are gone for good: never spent, moved or retired again. The answer
        names the certificate (`/v1/certificates/{id}`)."""
        declared = _footprint(body.footprint) if body.footprint else None
        grams = body.grams if body.grams is not None else declared.grams if declared else None
        if grams is None:
            raise InputError("give grams, a footprint, or both")
        return _outcome(
            wallet.retire(
                app,
                who.pseudonym,
                grams,
                key,
                _actor(who),
                footprint=declared.as_dict() if declared else None,
            )
        )

    @api.post(
        "/v1/me/gifts",
        response_model=OperationOut,
        tags=["citizen"],
        responses=citizen_errors,
        summary="Give grams or points to another citizen",
    )
    def give(body: GiftIn, who: Citizen, key: IdempotencyKey) -> OperationOut:
        """At most 100 kg (or 100 000 points) a gift and twice that a day. The receiver's
        identifier is pseudonymised at once and never stored."""
        to = queries.pseudonym_of(app, body.to)
        return _outcome(
            wallet.transfer(
                app, who.pseudonym, to, body.amount, key, _actor(who), programme=body.programme
            )
        )

    @api.get(
        "/v1/rewards",
        response_model=list[RewardOut],
        tags=["rewards"],
        summary="Rewards that can be redeemed now",
    )
    def rewards() -> list[RewardOut]:
        """Public: price, stock left, per-citizen limit and window of each."""
        return [_reward(r) for r in wallet.list_rewards(app, available_at=app.clock())]

    @api.get(
        "/v1/programmes",
        response_model=list[ProgrammeOut],
        tags=["rewards"],
        summary="Points programmes",
    )
    def programmes() -> list[ProgrammeOut]:
        """Public: how credited grams earn points in each programme, and when points expire."""
        return [ProgrammeOut(**dataclasses.asdict(p)) for p in wallet.list_programmes(app)]

    @api.post(
        "/v1/footprints",
        response_model=FootprintOut,
        tags=["rewards"],
        responses={422: problem_doc()},
        summary="Compute a footprint, with its explanation",
    )
    def footprint(body: FootprintIn) -> FootprintOut:
        """Public: the grams a retirement would have to cover, with factors and sources."""
        declared = _footprint(body)
        return FootprintOut(
            grams=declared.grams,
            footprint=declared.as_dict(),
            explanation=declared.explanation(),
        )

    certificate_errors: dict[int | str, dict[str, Any]] = {404: problem_doc()}

    @api.get(
        "/v1/certificates/{certificate}",
        response_model=CertificateOut,
        tags=["rewards"],
        responses=certificate_errors,
        summary="Verify a certificate",
    )
    def certificate(certificate: Annotated[str, Path_(max_length=40)]) -> CertificateOut:
        """Public: anyone holding a certificate id can check it (ids cannot be guessed)."""
        return CertificateOut(**dataclasses.asdict(wallet.verify_certificate(app, certificate)))

    @api.get(
        "/v1/certificates/{certificate}/html",
        tags=["rewards"],
        responses={200: {"content": {"text/html": {}}}, **certificate_errors},
        response_class=Response,
        summary="A certificate as a web page",
    )
    def certificate_html(certificate: Annotated[str, Path_(max_length=40)]) -> Response:
        """Self-contained: no external assets."""
        found = wallet.verify_certificate(app, certificate)
        return Response(certificates.html(found), media_type="text/html; charset=utf-8")

    @api.get(
        "/v1/certificates/{certificate}/pdf",
        tags=["rewards"],
        responses={200: {"content": {"application/pdf": {}}}, **certificate_errors},
        response_class=Response,
        summary="A certificate as a PDF file",
    )
    def certificate_pdf(certificate: Annotated[str, Path_(max_length=40)]) -> Response:
        """One A4 page."""
        found = wallet.verify_certificate(app, certificate)
        return Response(
            certificates.pdf(found),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{found.certificate}.pdf"'},
        )

    @api.post(
        "/v1/programmes",
        response_model=ProgrammeOut,
        tags=["platform"],
        responses={
            401: problem_doc("Not signed by an active key of a platform."),
            409: problem_doc("The code is taken."),
        },
        summary="Define a points programme of your own",
    )
    def add_own_programme(body: PlatformProgrammeIn, signer: Platform) -> ProgrammeOut:
        """Credits of your records from `starts_at` (now by default) earn its points."""
        return new_programme(body, signer)

    @api.post(
        "/v1/oversight/programmes",
        response_model=ProgrammeOut,
        tags=["oversight"],
        responses=operator_errors,
        summary="Define a points programme (operators)",
    )
    def add_programme(body: ProgrammeIn, who: Staff) -> ProgrammeOut:
        """Credits from `starts_at` (now by default) earn points when the jobs run."""
        require(who, oversight.Role.OPERATOR)
        return new_programme(body, body.platform)

    @api.post(
        "/v1/oversight/rewards",
        response_model=RewardOut,
        tags=["oversight"],
        responses=operator_errors,
        summary="Put a reward in the catalogue (operators)",
    )
    def add_reward(body: RewardIn, who: Staff) -> RewardOut:
        """A coupon's stock is the codes uploaded for it."""
        require(who, oversight.Role.OPERATOR)
        fields = body.model_dump(exclude={"code", "name", "kind", "issuer"})
        return _reward(
            wallet.add_reward(app, body.code, body.name, body.kind, body.issuer, **fields)
        )

    @api.post(
        "/v1/oversight/rewards/{code}/codes",
        response_model=CodesOut,
        tags=["oversight"],
        responses=operator_errors,
        summary="Add coupon codes (operators)",
    )
    def add_codes(
        code: Annotated[str, Path_(max_length=64)], body: CodesIn, who: Staff
    ) -> CodesOut:
        """Each code is handed out once, in upload order; codes already there are skipped."""
        require(who, oversight.Role.OPERATOR)
        added = wallet.add_codes(app, code, body.codes)
        return CodesOut(added=added, remaining=wallet.get_reward(app, code).remaining)

    @api.post(
        "/v1/oversight/reversals",
        response_model=OperationOut,
        tags=["oversight"],
        responses=operator_errors,
        summary="Reverse a credit, a redemption or a gift (operators)",
    )
    def reverse(body: ReversalIn, who: Staff, key: IdempotencyKey) -> OperationOut:
        """The mirror entry is posted; nothing is edited. A credit's points go with it."""
        require(who, oversight.Role.OPERATOR)
        return _outcome(wallet.reverse(app, body.entry, key, f"staff:{who.name}", body.reason))

    @api.post(
        "/v1/oversight/jobs",
        response_model=JobsOut,
        tags=["oversight"],
        responses=operator_errors,
        summary="Run the scheduled jobs now (operators)",
    )
    def run_jobs(who: Staff) -> JobsOut:
        """Award points for new credits, expire points past their validity. Idempotent."""
        require(who, oversight.Role.OPERATOR)
        return JobsOut(**dataclasses.asdict(wallet.run_jobs(app)))

    def new_programme(body: PlatformProgrammeIn, platform: str | None) -> ProgrammeOut:
        p = wallet.add_programme(
            app,
            body.code,
            body.name,
            body.points_per_kg,
            body.expiry_days,
            platform,
            starts_at=body.starts_at,
        )
        return ProgrammeOut(**dataclasses.asdict(p))

    def _footprint(body: FootprintIn) -> footprints.Footprint:
        return footprints.compute(app.catalogue, body.kind, body.amount, body.region)


def _actor(who: citizens.Citizen) -> str:
    return f"platform:{who.platform}"


def _outcome(outcome: wallet.Outcome) -> OperationOut:
    return OperationOut(
        operation=outcome.operation,
        kind=outcome.kind,  # type: ignore[arg-type]  # the table's check constraint
        replayed=outcome.replayed,
        result=outcome.result,
    )


def _reward(r: wallet.Reward) -> RewardOut:
    return RewardOut(
        code=r.code,
        name=r.name,
        kind=r.kind,  # type: ignore[arg-type]  # the table's check constraint
        issuer=r.issuer,
        project=r.project,
        price=r.price,
        unit=r.unit,  # type: ignore[arg-type]
        programme=r.programme,
        remaining=r.remaining,
        per_citizen_limit=r.per_citizen_limit,
        valid_from=r.valid_from,
        valid_to=r.valid_to,
    )
