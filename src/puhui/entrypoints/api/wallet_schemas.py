"""The documents of personal carbon accounts: holdings, rewards and programmes, what a citizen
asks (redemptions, retirements, footprints, gifts), what an operator sets up (programmes,
rewards, coupon codes, reversals), and what an operation did. Grams CO2e and points are kept
apart everywhere.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from puhui.service import wallet

MAX_CODES = 10_000


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

    @classmethod
    def of(cls, r: wallet.Reward) -> RewardOut:
        return cls(
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


class ProgrammeOut(BaseModel):
    """A points programme."""

    code: str
    name: str
    platform: str | None = Field(description="The platform running it; null: the exchange.")
    points_per_kg: Decimal
    expiry_days: int | None
    starts_at: datetime

    @classmethod
    def of(cls, p: wallet.Programme) -> ProgrammeOut:
        return cls(**dataclasses.asdict(p))


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

    @classmethod
    def of(cls, outcome: wallet.Outcome) -> OperationOut:
        return cls(
            operation=outcome.operation,
            kind=outcome.kind,  # type: ignore[arg-type]  # the table's check constraint
            replayed=outcome.replayed,
            result=outcome.result,
        )


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

    held_ended: int = Field(
        description="held records ended because their corroboration window was over"
    )
    awarded_points: int
    awarded_credits: int
    expired_points: int
    expired_accounts: int
