"""Personal carbon accounts: what citizens do with what they earned (存储、抵消、交易).

Grams of CO2e and points live on the same double-entry ledger, in accounts of their own unit
(`g` or `pt`), and no entry ever mixes the two: grams are what a regulator counts, points are
an incentive a programme pays on top of them. Accounts, by kind:

- `citizen` (g): what a citizen holds; credited by intake, spent, given and retired from here;
- `retired` (g, one per citizen): grams retired against the citizen's own footprint. Nothing is
  ever taken out of it: retired grams cannot be spent, moved or retired again;
- `reward` (g or pt, one per reward): what citizens paid for a reward;
- `points` (pt, one per citizen and programme), `programme` (pt: minus all it awarded) and
  `expired` (pt: what expired unused, per programme).

Every operation a citizen (or the operator, for reversals) asks for is one transaction that
does all of it or nothing, and is recorded in `operations` under the client's idempotency key:
sent again with the same key and the same request, it returns the first answer and changes
nothing; with the same key and another request it is refused (`idempotency_conflict`).

Concurrency: an operation first registers its citizen and claims its key (writes, so SQLite
takes its write lock before reading anything), then changes balances in the order every writer
uses, intake included (citizens' own accounts, then shared accounts, each by id), and takes a
reward's stock row last; so concurrent operations queue and never deadlock, and the rows all
redemptions of a reward share are held only briefly. A debit is a conditional update
(`balance >= amount`), so no balance that may not be negative ever is, and no stock goes below
zero.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from puhui.adapters.sql import ledger
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.intake import IntakeStore
from puhui.adapters.sql.ledger import Leg
from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.domain.errors import (
    AlreadyExistsError,
    InputError,
    InsufficientBalance,
    NotFoundError,
    RefusedError,
)
from puhui.service import queries

# Gifts: at most this much in one gift, and sent by one citizen in one day (China time).
MAX_GIFT_G = 100_000
MAX_GIFTS_G_PER_DAY = 200_000
MAX_GIFT_POINTS = 100_000
MAX_GIFTS_POINTS_PER_DAY = 200_000
MAX_KEY = 128
UNITS = ("g", "pt")
REWARD_KINDS = ("coupon", "tree", "donation")
# Entries that a reversal may undo. A retirement never is; awards and expiries follow their
# credit.
REVERSIBLE = ("credit", "redeem", "transfer")
_CERTIFICATE = b"puhui certificate\x00"


# Programmes and rewards ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Programme:
    """How credited grams become points."""

    code: str
    name: str
    platform: str | None
    points_per_kg: Decimal
    expiry_days: int | None
    starts_at: datetime


def add_programme(
    app: App,
    code: str,
    name: str,
    points_per_kg: Decimal,
    expiry_days: int | None = None,
    platform: str | None = None,
    starts_at: datetime | None = None,
) -> Programme:
    """Define a points programme: each credit from `starts_at` (now by default) on earns
    floor(grams × points_per_kg / 1000) points (of the platform's records only, when a platform
    runs it), valid for `expiry_days` (for ever without).

    Raises:
        InputError: a rate or expiry that is not positive, or a code that is not tame.
        AlreadyExistsError: the code is taken.
        NotFoundError: no such platform.
    """
    _check_code(code)
    _check_text("a programme's name", name)
    if not points_per_kg.is_finite() or points_per_kg <= 0 or points_per_kg > 1_000_000:
        raise InputError("points per kg must be a positive number up to 1 000 000")
    if points_per_kg != points_per_kg.quantize(Decimal("0.000001")):
        raise InputError("points per kg has at most six decimals")
    if expiry_days is not None and expiry_days <= 0:
        raise InputError("points expire after a positive number of days")
    now = app.clock()
    starts_at = starts_at or now
    with app.engine.begin() as conn:
        platform_id = IntakeStore(conn).platform_id(platform) if platform else None
        _insert_new(
            conn,
            t.programmes,
            "programme",
            {
                "code": code,
                "name": name,
                "platform_id": platform_id,
                "points_per_kg": points_per_kg,
                "expiry_days": expiry_days,
                "starts_at": starts_at,
                "created_at": now,
            },
        )
    return Programme(code, name, platform, points_per_kg, expiry_days, starts_at)


def list_programmes(app: App) -> list[Programme]:
    """Every points programme."""
    p, pl = t.programmes, t.platforms
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(p.c.code, p.c.name, pl.c.code, p.c.points_per_kg, p.c.expiry_days, p.c.starts_at)
            .select_from(p.outerjoin(pl, pl.c.id == p.c.platform_id))
            .order_by(p.c.code)
        ).all()
    return [
        Programme(code, name, plat, _plain(Decimal(str(rate))), days, queries.aware(starts))
        for code, name, plat, rate, days, starts in rows
    ]


def _plain(value: Decimal) -> Decimal:
    """A rate without the column's trailing zeros: 10, 2.5."""
    return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()


@dataclass(frozen=True, slots=True)
class Reward:
    """A reward in the catalogue."""

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
    """Put a reward in the catalogue. A coupon's stock is its codes (`add_codes`); a tree or a
    donation has a stock, or none for unlimited.

    Raises:
        InputError: an inconsistent price, stock, limit or window.
        AlreadyExistsError: the code is taken.
        NotFoundError: no such programme.
    """
    _check_code(code)
    _check_text("a reward's name", name)
    _check_text("a reward's issuer", issuer)
    _check_text("a reward's project", project)
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
    with app.engine.begin() as conn:
        programme_id = _programme(conn, programme)["id"] if programme else None
        _insert_new(
            conn,
            t.rewards,
            "reward",
            {
                "code": code,
                "name": name,
                "kind": kind,
                "issuer": issuer,
                "project": project,
                "price_g": price_g,
                "price_points": price_points,
                "programme_id": programme_id,
                "stock": stock,
                "remaining": stock,
                "per_citizen_limit": per_citizen_limit,
                "valid_from": valid_from,
                "valid_to": valid_to,
                "created_at": app.clock(),
            },
        )
    return get_reward(app, code)


def add_codes(app: App, reward: str, codes: Iterable[str]) -> int:
    """Add coupon codes to a coupon's pool (each is handed out once, in upload order); returns
    how many were added. Codes already in the pool are skipped.

    Raises:
        NotFoundError: no such reward.
        InputError: not a coupon, or an empty or over-long code.
    """
    wanted = list(dict.fromkeys(c.strip() for c in codes))
    if any(not c or len(c) > 128 or not c.isprintable() for c in wanted):
        raise InputError("a coupon code has 1 to 128 printable characters")
    r = t.rewards
    with app.engine.begin() as conn:
        row = conn.execute(
            select(r.c.id, r.c.kind).where(r.c.code == reward).with_for_update()
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no reward {reward!r}")
        if row.kind != "coupon":
            raise InputError(f"{reward} is a {row.kind}, not a coupon")
        known = set(
            conn.execute(
                select(t.reward_codes.c.code).where(t.reward_codes.c.reward_id == row.id)
            ).scalars()
        )
        new = [c for c in wanted if c not in known]
        last = conn.execute(
            select(func.coalesce(func.max(t.reward_codes.c.ordinal), 0)).where(
                t.reward_codes.c.reward_id == row.id
            )
        ).scalar_one()
        if new:
            conn.execute(
                insert(t.reward_codes),
                [
                    {"reward_id": row.id, "ordinal": last + i, "code": c}
                    for i, c in enumerate(new, start=1)
                ],
            )
            conn.execute(
                update(r)
                .where(r.c.id == row.id)
                .values(stock=r.c.stock + len(new), remaining=r.c.remaining + len(new))
            )
    return len(new)


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
    r, p = t.rewards, t.programmes
    query = (
        select(
            r.c.code,
            r.c.name,
            r.c.kind,
            r.c.issuer,
            r.c.project,
            r.c.price_g,
            r.c.price_points,
            p.c.code,
            r.c.stock,
            r.c.remaining,
            r.c.per_citizen_limit,
            r.c.valid_from,
            r.c.valid_to,
        )
        .select_from(r.outerjoin(p, p.c.id == r.c.programme_id))
        .order_by(r.c.code)
    )
    if code is not None:
        query = query.where(r.c.code == code)
    with app.engine.connect() as conn:
        rows = conn.execute(query).all()
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
            remaining=row[9],
            per_citizen_limit=row[10],
            valid_from=queries.aware(row[11]) if row[11] else None,
            valid_to=queries.aware(row[12]) if row[12] else None,
        )
        for row in rows
    ]


def _open(reward: Reward, at: datetime) -> bool:
    return (reward.valid_from is None or reward.valid_from <= at) and (
        reward.valid_to is None or at < reward.valid_to
    )


# Operations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to an operation: the same for a re-sent request with the same key.

    Attributes:
        operation: its id (certificates and the audit trail name it).
        kind: redeem, retire, transfer or reverse.
        result: what was done (JSON-ready): amounts, entry ids, the coupon code handed out, the
            tree's number, the certificate id.
        replayed: whether this answers a request already done.
    """

    operation: int
    kind: str
    result: dict[str, Any]
    replayed: bool = False


def redeem(app: App, pseudonym: str, reward: str, key: str, actor: str) -> Outcome:
    """Redeem a reward for a citizen: pay its price from their grams or points, take one from
    its stock, hand out the next coupon code or tree number.

    Raises:
        NotFoundError: no such reward.
        RefusedError: `not_available` (outside its window), `out_of_stock`, `limit_reached`,
            `insufficient_balance`, `idempotency_conflict`.
    """
    request = {"op": "redeem", "reward": reward}
    return _operate(app, pseudonym, key, "redeem", request, actor, _redeem, reward=reward)


def retire(
    app: App,
    pseudonym: str,
    grams: int,
    key: str,
    actor: str,
    footprint: Mapping[str, Any] | None = None,
) -> Outcome:
    """Retire grams against the citizen's own footprint, for good, and issue a certificate.

    Args:
        footprint: the declared footprint it offsets (kind, inputs, computed grams and their
            explanation, from `puhui.service.footprints`), kept on the certificate.

    Raises:
        InputError: grams not positive.
        RefusedError: `insufficient_balance`, `idempotency_conflict`.
    """
    if grams <= 0:
        raise InputError("retire a positive number of grams")
    request = {"op": "retire", "grams": grams, "footprint": dict(footprint or {})}
    return _operate(app, pseudonym, key, "retire", request, actor, _retire)


def transfer(
    app: App,
    pseudonym: str,
    to_pseudonym: str,
    amount: int,
    key: str,
    actor: str,
    programme: str | None = None,
) -> Outcome:
    """Give grams (or, with a programme, that programme's points) to another citizen.

    Raises:
        InputError: amount not positive, or the citizen giving to themselves.
        NotFoundError: no such programme.
        RefusedError: `gift_too_large`, `daily_gift_limit`, `insufficient_balance`,
            `idempotency_conflict`.
    """
    if amount <= 0:
        raise InputError("give a positive amount")
    if to_pseudonym == pseudonym:
        raise InputError("a citizen cannot give to themselves")
    request = {"op": "transfer", "to": to_pseudonym, "amount": amount, "programme": programme}
    return _operate(app, pseudonym, key, "transfer", request, actor, _transfer)


def reverse(app: App, entry_id: int, key: str, actor: str, reason: str) -> Outcome:
    """Reverse an entry with its mirror (a correction or a refund; the ledger is never edited):
    a credit (and the points it earned), a redemption or a transfer. The citizen the entry is
    about is the one who must have the grams or points back.

    Raises:
        NotFoundError: no such entry.
        RefusedError: `not_reversible` (a retirement, an award, an expiry, a reversal),
            `already_reversed`, `insufficient_balance`, `idempotency_conflict`.
    """
    if not reason.strip():
        raise InputError("say why the entry is reversed")
    _check_text("a reason", reason, 500)
    with app.engine.connect() as conn:
        subject_id = conn.execute(
            text(
                # The citizen taking the grams (or points) back: a gift's receiver, else the
                # one citizen the transfer moved grams to or from.
                "select coalesce(a.subject_id, a.owner_id) from transfers x "
                "join accounts a on a.id in (x.debit_account_id, x.credit_account_id) "
                "where x.id = :e and coalesce(a.subject_id, a.owner_id) is not null "
                "order by case when x.kind = 'transfer' and a.id = x.credit_account_id "
                "then 0 else 1 end, a.id limit 1"
            ),
            {"e": entry_id},
        ).scalar_one_or_none()
        pseudonym = (
            conn.execute(
                select(t.subjects.c.pseudonym).where(t.subjects.c.id == subject_id)
            ).scalar_one_or_none()
            if subject_id is not None
            else None
        )
    if pseudonym is None:
        raise NotFoundError(f"no entry {entry_id} of a citizen's account")
    request = {"op": "reverse", "entry": entry_id, "reason": reason.strip()}
    return _operate(app, pseudonym, key, "reverse", request, actor, _reverse)


@dataclass
class _Context:
    conn: Connection
    app: App
    subject_id: int
    operation: int | None
    at: datetime
    request: dict[str, Any]
    reward: dict[str, Any] | None = None
    result: dict[str, Any] = field(default_factory=dict)


def _operate(
    app: App,
    pseudonym: str,
    key: str,
    kind: str,
    request: dict[str, Any],
    actor: str,
    work: Callable[[_Context], None],
    reward: str | None = None,
) -> Outcome:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InputError(f"an idempotency key has 1 to {MAX_KEY} printable characters")
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    at = app.clock()
    try:
        with app.engine.begin() as conn:
            subject_id = _subject(conn, pseudonym)
            reward_row = _reward_row(conn, reward) if reward else None
            operation = conn.execute(
                insert(t.operations)
                .values(
                    subject_id=subject_id,
                    idempotency_key=key,
                    kind=kind,
                    request_digest=digest,
                    reward_id=reward_row["id"] if reward_row else None,
                    actor=actor,
                    result="{}",
                    created_at=at,
                )
                .returning(t.operations.c.id)
            ).scalar_one()
            context = _Context(conn, app, subject_id, operation, at, request, reward_row)
            work(context)
            conn.execute(
                update(t.operations)
                .where(t.operations.c.id == operation)
                .values(result=json.dumps(context.result, sort_keys=True))
            )
            return Outcome(operation, kind, context.result)
    except IntegrityError:
        stored = _stored(app, pseudonym, key)
        if stored is None:
            # Another operation changed the same rows at the same moment (two reversals of
            # one entry, say): nothing was done; the client may try again.
            raise RefusedError(
                "concurrent_change", "the account changed at the same moment: try again"
            ) from None
        if stored[1] != digest:
            raise RefusedError(
                "idempotency_conflict", "this idempotency key was used for another request"
            ) from None
        return Outcome(stored[0], stored[2], json.loads(stored[3]), replayed=True)


def _stored(app: App, pseudonym: str, key: str) -> tuple[int, str, str, str] | None:
    o, s = t.operations, t.subjects
    with app.engine.connect() as conn:
        row = conn.execute(
            select(o.c.id, o.c.request_digest, o.c.kind, o.c.result)
            .select_from(o.join(s, s.c.id == o.c.subject_id))
            .where(s.c.pseudonym == pseudonym, o.c.idempotency_key == key)
        ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3])


def _redeem(c: _Context) -> None:
    reward = c.reward
    assert reward is not None
    if not (
        (reward["valid_from"] is None or queries.aware(reward["valid_from"]) <= c.at)
        and (reward["valid_to"] is None or c.at < queries.aware(reward["valid_to"]))
    ):
        raise RefusedError("not_available", f"{reward['code']} cannot be redeemed now")
    if reward["price_g"] is not None:
        unit, price = "g", int(reward["price_g"])
        payer = _citizen_account(c.conn, c.subject_id)
    else:
        unit, price = "pt", int(reward["price_points"])
        payer = _points_account(c.conn, reward["programme"], c.subject_id)
    sink = _account(c.conn, "reward", f"reward:{reward['code']}", unit)
    if reward["per_citizen_limit"] is not None:
        # The payer's row queues this citizen's operations: the count sees the ones before.
        _lock(c.conn, payer)
        o = t.operations
        done = c.conn.execute(
            select(func.count())
            .select_from(o)
            .where(
                o.c.subject_id == c.subject_id,
                o.c.reward_id == reward["id"],
                o.c.kind == "redeem",
            )
        ).scalar_one()
        if done > reward["per_citizen_limit"]:
            raise RefusedError(
                "limit_reached",
                f"{reward['code']} can be redeemed {reward['per_citizen_limit']} times per citizen",
            )
    entry = _post(
        c,
        "redeem",
        [(payer, -price, True), (sink, price, False)],
        asked=f"{reward['code']} costs {price} {unit}",
    )
    # The stock row last: every redemption of the reward queues on it until it commits.
    r = t.rewards
    taken = c.conn.execute(
        update(r)
        .where(r.c.id == reward["id"], (r.c.remaining.is_(None)) | (r.c.remaining > 0))
        .values(remaining=r.c.remaining - 1, issued=r.c.issued + 1)
        .returning(r.c.issued)
    ).one_or_none()
    if taken is None:
        raise RefusedError("out_of_stock", f"{reward['code']} is out of stock")
    c.result.update(
        {"reward": reward["code"], "kind": reward["kind"], "unit": unit, "price": price}
    )
    c.result["entry"] = entry
    ordinal = int(taken.issued)  # the coupon code's place in the pool, the tree's number
    if reward["kind"] == "coupon":
        code = c.conn.execute(
            select(t.reward_codes.c.code).where(
                t.reward_codes.c.reward_id == reward["id"], t.reward_codes.c.ordinal == ordinal
            )
        ).scalar_one()
        c.result["coupon_code"] = code
    elif reward["kind"] == "tree":
        c.result["tree_number"] = ordinal
        c.result["project"] = reward["project"]
        c.result["certificate"] = certificate_id(c.app, _operation(c))
    else:
        c.result["project"] = reward["project"]


def _operation(c: _Context) -> int:
    assert c.operation is not None, "a citizen's operation"
    return c.operation


def _retire(c: _Context) -> None:
    grams = int(c.request["grams"])
    citizen = _citizen_account(c.conn, c.subject_id)
    retired = _account(c.conn, "retired", f"retired:{c.subject_id}", "g", owner=c.subject_id)
    entry = _post(
        c,
        "retire",
        [(citizen, -grams, True), (retired, grams, False)],
        asked=f"retiring {grams} g takes them",
    )
    c.result.update(
        {
            "retired_g": grams,
            "entry": entry,
            "certificate": certificate_id(c.app, _operation(c)),
            "footprint": c.request["footprint"] or None,
        }
    )


def _transfer(c: _Context) -> None:
    amount, programme = int(c.request["amount"]), c.request["programme"]
    to_subject = _subject(c.conn, c.request["to"])
    if programme is None:
        unit, most, per_day = "g", MAX_GIFT_G, MAX_GIFTS_G_PER_DAY
        giver = _citizen_account(c.conn, c.subject_id)
        taker = _citizen_account(c.conn, to_subject)
    else:
        unit, most, per_day = "pt", MAX_GIFT_POINTS, MAX_GIFTS_POINTS_PER_DAY
        giver = _points_account(c.conn, programme, c.subject_id)
        taker = _points_account(c.conn, programme, to_subject)
    if amount > most:
        raise RefusedError("gift_too_large", f"a gift is at most {most} {unit}")
    day_start = china_time.day_start(c.at)
    given = c.conn.execute(
        text(
            "select coalesce(sum(x.amount), 0) from transfers x "
            "where x.debit_account_id = :a and x.kind = 'transfer' and x.created_at >= :since"
        ).bindparams(bindparam("since", type_=t.transfers.c.created_at.type)),
        {"a": giver, "since": day_start},
    ).scalar_one()
    if int(given) + amount > per_day:
        raise RefusedError("daily_gift_limit", f"a citizen gives at most {per_day} {unit} a day")
    entry = _post(
        c,
        "transfer",
        [(giver, -amount, True), (taker, amount, False)],
        asked=f"a gift of {amount} {unit}",
    )
    c.result.update({"amount": amount, "unit": unit, "programme": programme, "entry": entry})


def _reverse(c: _Context) -> None:
    entry_id = int(c.request["entry"])
    x = t.transfers
    row = c.conn.execute(
        select(x.c.kind, x.c.debit_account_id, x.c.credit_account_id, x.c.amount).where(
            x.c.id == entry_id
        )
    ).one()
    if row.kind not in REVERSIBLE:
        raise RefusedError("not_reversible", f"a {row.kind} entry cannot be reversed")
    done = c.conn.execute(select(x.c.id).where(x.c.reverses == entry_id)).scalar_one_or_none()
    if done is not None:
        raise RefusedError("already_reversed", f"entry {entry_id} is reversed already")
    kinds = dict(
        c.conn.execute(
            select(t.accounts.c.id, t.accounts.c.kind).where(
                t.accounts.c.id.in_([row.debit_account_id, row.credit_account_id])
            )
        ).all()
    )
    # The mirror: what went in comes out again (guarded, unless the account is a source).
    taker = row.credit_account_id
    reversals = [
        _post(
            c,
            "reversal",
            [
                (taker, -row.amount, kinds[taker] not in ("issuance", "programme")),
                (row.debit_account_id, row.amount, False),
            ],
            reverses=entry_id,
            asked=f"reversing entry {entry_id} takes back {row.amount}",
        )
    ]
    if row.kind == "credit":
        # The points the credit earned go with it: the citizen gives them back to each
        # programme (an award entry holds many citizens' points, so it is not mirrored).
        earned = c.conn.execute(
            text(
                "select p.code, w.points, r.subject_id from awards w "
                "join programmes p on p.id = w.programme_id "
                "join transfers x on x.id = w.credit_transfer_id "
                "join records r on r.seq = x.record_seq "
                "where w.credit_transfer_id = :e and w.points > 0 order by p.code"
            ),
            {"e": entry_id},
        ).all()
        for programme, points, subject_id in earned:
            account = _points_account(c.conn, programme, subject_id)
            source = _account(c.conn, "programme", f"programme:{programme}", "pt")
            reversals.append(
                _post(
                    c,
                    "award_reversal",
                    [(account, -int(points), True), (source, int(points), False)],
                )
            )
    c.result.update({"reversed": entry_id, "entries": reversals, "reason": c.request["reason"]})


# Points: awards and expiry (`puhui jobs run`) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobReport:
    """What one run of the scheduled jobs did."""

    awarded_points: int
    awarded_credits: int
    expired_points: int
    expired_accounts: int


def run_jobs(app: App) -> JobReport:
    """Award points for credits not yet awarded and expire points past their validity, for
    every programme. Idempotent: a second run right after does nothing."""
    awarded = credits = expired = accounts = 0
    for programme in list_programmes(app):
        a, c = _award(app, programme)
        x, n = _expire(app, programme)
        awarded, credits, expired, accounts = awarded + a, credits + c, expired + x, accounts + n
    return JobReport(awarded, credits, expired, accounts)


def _award(app: App, programme: Programme) -> tuple[int, int]:
    """One award entry per run: each citizen's points for the credits not yet awarded, each
    credit's points (floored) recorded in `awards`."""
    at = app.clock()
    with app.engine.begin() as conn:
        prog = _programme(conn, programme.code)
        platform_filter = "and r.platform_id = :platform" if prog["platform_id"] else ""
        pending = conn.execute(
            text(
                "select x.id, r.subject_id, x.amount from transfers x "
                "join records r on r.seq = x.record_seq "
                "where x.kind = 'credit' and x.created_at >= :starts "
                f"{platform_filter} and not exists (select 1 from awards w "
                "where w.programme_id = :prog and w.credit_transfer_id = x.id) order by x.id"
            ).bindparams(bindparam("starts", type_=t.transfers.c.created_at.type)),
            {"starts": prog["starts_at"], "platform": prog["platform_id"], "prog": prog["id"]},
        ).all()
        if not pending:
            return 0, 0
        rate = programme.points_per_kg
        per_subject: dict[int, int] = defaultdict(int)
        earned = []
        for credit_id, subject_id, grams in pending:
            points = int((Decimal(grams) * rate / 1000).to_integral_value(ROUND_FLOOR))
            earned.append((credit_id, subject_id, points))
            per_subject[subject_id] += points
        per_subject = {s: n for s, n in per_subject.items() if n > 0}
        paid: dict[int, int] = {}  # citizen → the transfer of the run that paid them
        if per_subject:
            accounts = _points_accounts(conn, programme.code, sorted(per_subject))
            source = _account(conn, "programme", f"programme:{programme.code}", "pt")
            total = sum(per_subject.values())
            legs: list[Leg] = [(accounts[s], n, False) for s, n in per_subject.items()]
            run = _post(
                _Context(conn, app, 0, None, at, {}),
                "award",
                [*legs, (source, -total, False)],
                expires_at=at + timedelta(days=programme.expiry_days)
                if programme.expiry_days
                else None,
            )
            owner = {account: s for s, account in accounts.items()}
            x = t.transfers
            paid = {
                owner[account]: int(transfer_id)
                for transfer_id, account in conn.execute(
                    select(x.c.id, x.c.credit_account_id).where(
                        (x.c.id == run) | (x.c.linked_to == run)
                    )
                ).all()
            }
        conn.execute(
            insert(t.awards),
            [
                {
                    "programme_id": prog["id"],
                    "credit_transfer_id": credit_id,
                    "award_transfer_id": paid[subject_id] if points else None,
                    "points": points,
                }
                for credit_id, subject_id, points in earned
            ],
        )
    return sum(per_subject.values()), len(pending)


def _expire(app: App, programme: Programme) -> tuple[int, int]:
    """Points are spent oldest first; what is left of the awards whose validity has ended, once
    everything spent is counted against them, expires."""
    at = app.clock()
    with app.engine.begin() as conn:
        rows = conn.execute(
            text(
                "select a.id, "
                "(select coalesce(sum(x.amount), 0) from transfers x "
                "where x.credit_account_id = a.id and x.expires_at <= :at) as lapsed, "
                "(select coalesce(sum(x.amount), 0) from transfers x "
                "where x.debit_account_id = a.id and x.kind <> 'expire') as used, "
                "(select coalesce(sum(x.amount), 0) from transfers x "
                "where x.debit_account_id = a.id and x.kind = 'expire') as expired "
                "from accounts a where a.kind = 'points' and substr(a.code, 1, :n) = :prefix "
                "order by a.id"
            ).bindparams(bindparam("at", type_=t.transfers.c.expires_at.type)),
            {
                "at": at,
                "prefix": f"points:{programme.code}:",
                "n": len(f"points:{programme.code}:"),
            },
        ).all()
        due = [
            (a, max(0, int(lapsed) - int(used)) - int(expired)) for a, lapsed, used, expired in rows
        ]
        due = [(a, n) for a, n in due if n > 0]
        if not due:
            return 0, 0
        sink = _account(conn, "expired", f"expired:{programme.code}", "pt")
        legs: list[Leg] = [(account, -points, True) for account, points in due]
        total = sum(points for _, points in due)
        _post(_Context(conn, app, 0, None, at, {}), "expire", [*legs, (sink, total, False)])
    return sum(n for _, n in due), len(due)


# Reading an account --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holdings:
    """Everything a citizen holds, grams and points apart."""

    balance_g: int
    retired_g: int
    points: dict[str, int]


def holdings(app: App, pseudonym: str) -> Holdings:
    """A citizen's grams, retired grams and points by programme (zeros for a stranger)."""
    with app.engine.connect() as conn:
        subject_id = conn.execute(
            select(t.subjects.c.id).where(t.subjects.c.pseudonym == pseudonym)
        ).scalar_one_or_none()
        if subject_id is None:
            return Holdings(0, 0, {})
        rows = conn.execute(
            text(
                "select a.kind, a.code, coalesce(b.balance_g, 0) from accounts a "
                "left join balances b on b.account_id = a.id "
                "where a.subject_id = :s or a.owner_id = :s"
            ),
            {"s": subject_id},
        ).all()
    grams = retired = 0
    points: dict[str, int] = {}
    for kind, code, balance in rows:
        if kind == "citizen":
            grams = int(balance)
        elif kind == "retired":
            retired = int(balance)
        elif kind == "points":
            points[code.split(":")[1]] = int(balance)
    return Holdings(grams, retired, dict(sorted(points.items())))


@dataclass(frozen=True, slots=True)
class OperationView:
    """One operation of the audit trail."""

    operation: int
    kind: str
    actor: str
    at: datetime
    result: dict[str, Any]


def operations(app: App, pseudonym: str, limit: int = 50) -> list[OperationView]:
    """A citizen's operations, newest first."""
    o, s = t.operations, t.subjects
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(o.c.id, o.c.kind, o.c.actor, o.c.created_at, o.c.result)
            .select_from(o.join(s, s.c.id == o.c.subject_id))
            .where(s.c.pseudonym == pseudonym)
            .order_by(o.c.id.desc())
            .limit(limit)
        ).all()
    return [
        OperationView(i, kind, actor, queries.aware(at), json.loads(result))
        for i, kind, actor, at, result in rows
    ]


# Certificates --------------------------------------------------------------------------------


def certificate_id(app: App, operation: int) -> str:
    """The public id of the certificate of an operation: its number and a keyed check, so that
    ids cannot be guessed and a printed one can be verified."""
    mac = hmac.digest(
        hmac.digest(app.secret, _CERTIFICATE, "sha256"), str(operation).encode(), "sha256"
    )
    return f"PH-{operation:08d}-{mac.hex()[:10].upper()}"


# PH-<operation>-<check>: ASCII digits (an operation id fits 64 bits) and hex.
_CERTIFICATE_ID = re.compile(r"PH-([0-9]{1,18})-[0-9A-F]{10}")


@dataclass(frozen=True, slots=True)
class Certificate:
    """A retirement or tree certificate, as verified."""

    certificate: str
    kind: str
    issued_at: datetime
    result: dict[str, Any]


def verify_certificate(app: App, certificate: str) -> Certificate:
    """The certificate with this id.

    Raises:
        NotFoundError: no certificate has this id (mistyped or forged).
    """
    found = _CERTIFICATE_ID.fullmatch(certificate.strip().upper())
    if found is None:
        raise NotFoundError("no certificate has this id")
    operation = int(found.group(1))
    if not hmac.compare_digest(certificate_id(app, operation).encode(), found.group(0).encode()):
        raise NotFoundError("no certificate has this id")
    o = t.operations
    with app.engine.connect() as conn:
        row = conn.execute(
            select(o.c.kind, o.c.created_at, o.c.result).where(o.c.id == operation)
        ).one_or_none()
    if row is None or "certificate" not in json.loads(row.result):
        raise NotFoundError("no certificate has this id")
    result = json.loads(row.result)
    kind = "retirement" if row.kind == "retire" else "tree"
    return Certificate(found.group(0), kind, queries.aware(row.created_at), result)


# Ledger plumbing -----------------------------------------------------------------------------


def _post(
    c: _Context,
    kind: str,
    legs: list[Leg],
    *,
    reverses: int | None = None,
    expires_at: datetime | None = None,
    asked: str = "",
) -> int:
    """Post one balanced entry through the ledger writer; the id of its (first) transfer.
    `asked` says, should the account hold too little, what asked for the amount."""
    try:
        return ledger.post(
            c.conn,
            kind,
            legs,
            c.at,
            operation=c.operation,
            reverses=reverses,
            expires_at=expires_at,
        )
    except InsufficientBalance as short:
        if not asked:
            raise
        raise short.saying(asked) from None


def _lock(conn: Connection, account: int) -> None:
    """Hold an account's balance row until the transaction ends (PostgreSQL; SQLite has one
    writer at a time anyway)."""
    conn.execute(
        select(t.balances.c.balance_g).where(t.balances.c.account_id == account).with_for_update()
    ).all()


def _subject(conn: Connection, pseudonym: str) -> int:
    # A write first, always: SQLite then takes its write lock before this transaction reads
    # anything, so concurrent operations wait for each other instead of failing.
    conn.execute(
        text("insert into subjects (pseudonym) values (:p) on conflict (pseudonym) do nothing"),
        {"p": pseudonym},
    )
    return int(
        conn.execute(
            select(t.subjects.c.id).where(t.subjects.c.pseudonym == pseudonym)
        ).scalar_one()
    )


def _citizen_account(conn: Connection, subject_id: int) -> int:
    found = conn.execute(
        select(t.accounts.c.id).where(t.accounts.c.subject_id == subject_id)
    ).scalar()
    if found is not None:
        return int(found)
    conn.execute(
        text(
            "insert into accounts (kind, subject_id, unit) values ('citizen', :s, 'g') "
            "on conflict (subject_id) do nothing"
        ),
        {"s": subject_id},
    )
    return int(
        conn.execute(
            select(t.accounts.c.id).where(t.accounts.c.subject_id == subject_id)
        ).scalar_one()
    )


def _points_account(conn: Connection, programme: str, subject_id: int) -> int:
    return _points_accounts(conn, programme, [subject_id])[subject_id]


def _points_accounts(conn: Connection, programme: str, subject_ids: list[int]) -> dict[int, int]:
    """The points accounts of citizens in a programme, opened where missing."""
    _programme(conn, programme)
    codes = {f"points:{programme}:{s}": s for s in subject_ids}
    conn.execute(
        text(
            "insert into accounts (kind, code, owner_id, unit) values ('points', :c, :o, 'pt') "
            "on conflict (code) do nothing"
        ),
        [{"c": code, "o": s} for code, s in codes.items()],
    )
    found: dict[int, int] = {}
    chunk = 5_000
    keys = list(codes)
    for i in range(0, len(keys), chunk):
        for account_id, code in conn.execute(
            select(t.accounts.c.id, t.accounts.c.code).where(
                t.accounts.c.code.in_(keys[i : i + chunk])
            )
        ).all():
            found[codes[code]] = int(account_id)
    return found


def _account(conn: Connection, kind: str, code: str, unit: str, owner: int | None = None) -> int:
    found = conn.execute(select(t.accounts.c.id).where(t.accounts.c.code == code)).scalar()
    if found is not None:
        return int(found)
    conn.execute(
        text(
            "insert into accounts (kind, code, owner_id, unit) values (:k, :c, :o, :u) "
            "on conflict (code) do nothing"
        ),
        {"k": kind, "c": code, "o": owner, "u": unit},
    )
    return int(conn.execute(select(t.accounts.c.id).where(t.accounts.c.code == code)).scalar_one())


def _programme(conn: Connection, code: str) -> dict[str, Any]:
    row = conn.execute(select(t.programmes).where(t.programmes.c.code == code)).one_or_none()
    if row is None:
        raise NotFoundError(f"no programme {code!r}")
    return dict(row._mapping)


def _reward_row(conn: Connection, code: str) -> dict[str, Any]:
    r, p = t.rewards, t.programmes
    row = conn.execute(
        select(r, p.c.code.label("programme"))
        .select_from(r.outerjoin(p, p.c.id == r.c.programme_id))
        .where(r.c.code == code)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no reward {code!r}")
    return dict(row._mapping)


def _insert_new(conn: Connection, table: Table, what: str, values: dict[str, Any]) -> None:
    """Insert a row whose `code` must be new.

    Raises:
        AlreadyExistsError: the code is taken.
    """
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**values))
    except IntegrityError:
        raise AlreadyExistsError(f"{what} {values['code']!r} exists already") from None


def _check_text(what: str, value: str | None, most: int = 200) -> None:
    """A name or a reason kept and shown to people: printable, and not too long (a NUL, which
    no database text may hold, is a control character)."""
    if value is not None and (len(value) > most or not value.isprintable()):
        raise InputError(f"{what} has at most {most} printable characters")


def _check_code(code: str) -> None:
    if not code or len(code) > 64 or not all(ch.isalnum() or ch in "-_." for ch in code):
        raise InputError("a code has 1 to 64 letters, digits, '-', '_' or '.'")
