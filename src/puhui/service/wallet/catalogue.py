"""The catalogue: points programmes (how credited grams earn points) and rewards (coupons, trees,
donations) with their stock, set up by the exchange's operator or a member platform."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from puhui.bootstrap import App
from puhui.domain.accounts import REWARD_KINDS, RewardTerms, stock_shards
from puhui.domain.errors import InputError, NotFoundError
from puhui.service import queries


@dataclass(frozen=True, slots=True)
class Programme:
    """How credited grams become points."""

    code: str
    name: str
    platform: str | None
    points_per_kg: Decimal
    expiry_days: int | None
    starts_at: datetime
    certifies: bool = False


def add_programme(
    app: App,
    code: str,
    name: str,
    points_per_kg: Decimal,
    expiry_days: int | None = None,
    platform: str | None = None,
    starts_at: datetime | None = None,
    certifies: bool = False,
) -> Programme:
    """Define a points programme: each credit from `starts_at` (now by default) on earns
    floor(grams × points_per_kg / 1000) points (of the platform's records only, when a platform
    runs it), valid for `expiry_days` (for ever without). With `certifies`, its terms let the
    exchange certify the credits it pays points for into carbon units, paying its points for
    the grams (docs/market.md): every citizen it awarded points takes part.

    Raises:
        InputError: a rate or expiry that is not positive, or a code that is not tame.
        AlreadyExistsError: the code is taken.
        NotFoundError: no such platform.
    """
    check_code(code)
    check_text("a programme's name", name)
    if not points_per_kg.is_finite() or points_per_kg <= 0 or points_per_kg > 1_000_000:
        raise InputError("points per kg must be a positive number up to 1 000 000")
    if points_per_kg != points_per_kg.quantize(Decimal("0.000001")):
        raise InputError("points per kg has at most six decimals")
    if expiry_days is not None and expiry_days <= 0:
        raise InputError("points expire after a positive number of days")
    now = app.clock()
    starts_at = starts_at or now
    app.rewards().add_programme(
        code, name, platform, points_per_kg, expiry_days, starts_at, now, certifies
    )
    return Programme(code, name, platform, points_per_kg, expiry_days, starts_at, certifies)


def list_programmes(app: App) -> list[Programme]:
    """Every points programme."""
    return [
        Programme(
            code, name, plat, _plain(Decimal(str(rate))), days, queries.aware(starts), bool(c)
        )
        for code, name, plat, rate, days, starts, c in app.rewards().programmes()
    ]


def _plain(value: Decimal) -> Decimal:
    """A rate without the column's trailing zeros: 10, 2.5."""
    return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward in the catalogue. `remaining` is what its stock has left (a coupon: its codes
    not handed out yet), None when unlimited."""

    code: str
    name: str
    kind: str
    issuer: str
    project: str | None
    price_g: int | None
    price_points: int | None
    programme: str | None
    stock: int | None
    remaining: int | None
    per_citizen_limit: int | None
    valid_from: datetime | None
    valid_to: datetime | None

    @property
    def unit(self) -> str:
        """What it is paid in: `g` or `pt`."""
        return "g" if self.price_g is not None else "pt"

    @property
    def price(self) -> int:
        """Its price in its unit."""
        return self.price_g if self.price_g is not None else int(self.price_points or 0)

    @property
    def terms(self) -> RewardTerms:
        """What a redemption of it must respect."""
        return RewardTerms(
            self.code,
            self.kind,
            self.price,
            self.unit,
            self.programme,
            self.per_citizen_limit,
            self.valid_from,
            self.valid_to,
            self.stock,
        )


def add_reward(
    app: App,
    code: str,
    name: str,
    kind: str,
    issuer: str,
    *,
    price_g: int | None = None,
    price_points: int | None = None,
    programme: str | None = None,
    stock: int | None = None,
    per_citizen_limit: int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    project: str | None = None,
) -> Reward:
    """Put a reward in the catalogue, its stock kept in parts (`domain.accounts`). A coupon's
    stock is its codes (`add_codes`); a tree or a donation has a stock, or none for
    unlimited.

    Raises:
        InputError: an inconsistent price, stock, limit or window.
        AlreadyExistsError: the code is taken.
        NotFoundError: no such programme.
    """
    check_code(code)
    check_text("a reward's name", name)
    check_text("a reward's issuer", issuer)
    check_text("a reward's project", project)
    if kind not in REWARD_KINDS:
        raise InputError(f"a reward is one of {', '.join(REWARD_KINDS)}, not {kind!r}")
    if (price_g is None) == (price_points is None):
        raise InputError("a reward is priced in grams or in points, one of them")
    if (price_points is None) != (programme is None):
        raise InputError("a price in points names the programme whose points pay it")
    if (price_g is not None and price_g <= 0) or (price_points is not None and price_points <= 0):
        raise InputError("a price is positive")
    if kind == "coupon":
        if stock is not None:
            raise InputError("a coupon's stock is the codes uploaded for it")
        stock = 0
    elif stock is not None and stock < 0:
        raise InputError("stock is not negative")
    if per_citizen_limit is not None and per_citizen_limit <= 0:
        raise InputError("a per-citizen limit is positive")
    if valid_from and valid_to and valid_to <= valid_from:
        raise InputError("a reward's window ends after it starts")
    values = {
        "code": code,
        "name": name,
        "kind": kind,
        "issuer": issuer,
        "project": project,
        "price_g": price_g,
        "price_points": price_points,
        "programme": programme,
        "stock": stock,
        "per_citizen_limit": per_citizen_limit,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "created_at": app.clock(),
    }
    app.rewards().add_reward(values, stock_shards(stock, kind))
    return get_reward(app, code)


def add_codes(app: App, reward: str, codes: Iterable[str]) -> int:
    """Add coupon codes to a coupon's pool (each is handed out once, in upload order); returns
    how many were added. Codes already in the pool are skipped.

    Raises:
        NotFoundError: no such reward.
        InputError: not a coupon, or an empty, over-long or unprintable code.
    """
    wanted = list(dict.fromkeys(c.strip() for c in codes))
    if any(not c or len(c) > 128 or not c.isprintable() for c in wanted):
        raise InputError("a coupon code has 1 to 128 printable characters")
    return app.rewards().add_codes(reward, wanted)


def get_reward(app: App, code: str) -> Reward:
    """One reward of the catalogue.

    Raises:
        NotFoundError: no such reward.
    """
    rewards = _rewards(app, code)
    if not rewards:
        raise NotFoundError(f"no reward {code!r}")
    return rewards[0]


def list_rewards(app: App, available_at: datetime | None = None) -> list[Reward]:
    """The catalogue; only what can be redeemed at a moment when one is given."""
    rewards = _rewards(app, None)
    if available_at is None:
        return rewards
    return [
        rw
        for rw in rewards
        if _open(rw, available_at) and (rw.remaining is None or rw.remaining > 0)
    ]


def _rewards(app: App, code: str | None) -> list[Reward]:
    return [
        Reward(
            code=row[0],
            name=row[1],
            kind=row[2],
            issuer=row[3],
            project=row[4],
            price_g=row[5],
            price_points=row[6],
            programme=row[7],
            stock=row[8],
            remaining=None if row[9] is None else int(row[9]),
            per_citizen_limit=row[10],
            valid_from=queries.aware(row[11]) if row[11] else None,
            valid_to=queries.aware(row[12]) if row[12] else None,
        )
        for row in app.rewards().rewards(code)
    ]


def _open(reward: Reward, at: datetime) -> bool:
    return (reward.valid_from is None or reward.valid_from <= at) and (
        reward.valid_to is None or at < reward.valid_to
    )


def check_text(what: str, value: str | None, most: int = 200) -> None:
    """A name or a reason kept and shown to people: printable, and not too long (a NUL, which
    no database text may hold, is a control character).

    Raises:
        InputError: it is not.
    """
    if value is not None and (len(value) > most or not value.isprintable()):
        raise InputError(f"{what} has at most {most} printable characters")


def check_code(code: str) -> None:
    """A programme's or a reward's code: 1 to 64 letters, digits, '-', '_' or '.'.

    Raises:
        InputError: it is not.
    """
    if not code or len(code) > 64 or not all(ch.isalnum() or ch in "-_." for ch in code):
        raise InputError("a code has 1 to 64 letters, digits, '-', '_' or '.'")
