"""The catalogue of the personal carbon accounts on SQL: points programmes, rewards with their
stock in parts (`reward_stock`) and the accounts each part is paid into, and coupon codes.
What a reward has left is derived: from its parts, or its unclaimed codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from puhui.adapters.sql import accounts
from puhui.adapters.sql import tables as t
from puhui.adapters.sql.intake import IntakeStore
from puhui.domain.accounts import Shard
from puhui.domain.errors import AlreadyExistsError, InputError, NotFoundError


class SqlRewards:
    """Implements `service.ports.Rewards` on a database engine, one transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_programme(
        self,
        code: str,
        name: str,
        platform: str | None,
        points_per_kg: Decimal,
        expiry_days: int | None,
        starts_at: datetime,
        at: datetime,
        certifies: bool = False,
    ) -> None:
        """Store a programme (AlreadyExistsError: its code is taken; NotFoundError: no such
        platform)."""
        with self.engine.begin() as conn:
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
                    "created_at": at,
                    "certifies": certifies,
                },
            )

    def programmes(self) -> list[tuple[Any, ...]]:
        """(code, name, platform, points per kg, expiry days, starts at, certifies) of each
        programme."""
        p, pl = t.programmes, t.platforms
        with self.engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    select(
                        p.c.code,
                        p.c.name,
                        pl.c.code,
                        p.c.points_per_kg,
                        p.c.expiry_days,
                        p.c.starts_at,
                        p.c.certifies,
                    )
                    .select_from(p.outerjoin(pl, pl.c.id == p.c.platform_id))
                    .order_by(p.c.code)
                ).all()
            ]

    def add_reward(self, values: dict[str, Any], shards: Sequence[Shard]) -> None:
        """Store a reward, its stock in these parts and the account each part is paid into
        (AlreadyExistsError: its code is taken; NotFoundError: no such programme)."""
        with self.engine.begin() as conn:
            programme = values.pop("programme")
            values["programme_id"] = (
                accounts.programme_row(conn, programme)["id"] if programme else None
            )
            _insert_new(conn, t.rewards, "reward", values)
            reward_id = conn.execute(
                select(t.rewards.c.id).where(t.rewards.c.code == values["code"])
            ).scalar_one()
            unit = "g" if values["price_g"] is not None else "pt"
            conn.execute(
                insert(t.reward_stock),
                [
                    {
                        "reward_id": reward_id,
                        "shard": s.shard,
                        "account_id": accounts.shared(
                            conn, "reward", accounts.reward_part_code(values["code"], s.shard), unit
                        ),
                        "allotted": s.allotted,
                        "taken": 0,
                        "next_number": s.next_number,
                    }
                    for s in shards
                ],
            )

    def add_codes(self, reward: str, codes: Sequence[str]) -> int:
        """Add coupon codes to a coupon's pool, after those there; how many were new.

        Raises:
            NotFoundError: no such reward.
            InputError: not a coupon.
        """
        r, c = t.rewards, t.reward_codes
        with self.engine.begin() as conn:
            row = conn.execute(
                select(r.c.id, r.c.kind).where(r.c.code == reward).with_for_update()
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"no reward {reward!r}")
            if row.kind != "coupon":
                raise InputError(f"{reward} is a {row.kind}, not a coupon")
            known = set(conn.execute(select(c.c.code).where(c.c.reward_id == row.id)).scalars())
            new = [code for code in codes if code not in known]
            last = conn.execute(
                select(func.coalesce(func.max(c.c.ordinal), 0)).where(c.c.reward_id == row.id)
            ).scalar_one()
            if new:
                conn.execute(
                    insert(c),
                    [
                        {"reward_id": row.id, "ordinal": last + i, "code": code}
                        for i, code in enumerate(new, start=1)
                    ],
                )
                conn.execute(update(r).where(r.c.id == row.id).values(stock=r.c.stock + len(new)))
        return len(new)

    def rewards(self, code: str | None) -> list[tuple[Any, ...]]:
        """(code, name, kind, issuer, project, price g, price points, programme, stock,
        remaining, per-citizen limit, valid from, valid to) of each reward, or of one;
        `remaining` is what its parts have left (a coupon: its unclaimed codes), None when
        unlimited."""
        r, p, s, c = t.rewards, t.programmes, t.reward_stock, t.reward_codes
        unclaimed = (
            select(func.count())
            .where(c.c.reward_id == r.c.id, c.c.operation_id.is_(None))
            .scalar_subquery()
        )
        left = (
            select(func.sum(s.c.allotted - s.c.taken)).where(s.c.reward_id == r.c.id)
        ).scalar_subquery()
        remaining = case((r.c.kind == "coupon", unclaimed), (r.c.stock.is_(None), None), else_=left)
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
                remaining,
                r.c.per_citizen_limit,
                r.c.valid_from,
                r.c.valid_to,
            )
            .select_from(r.outerjoin(p, p.c.id == r.c.programme_id))
            .order_by(r.c.code)
        )
        if code is not None:
            query = query.where(r.c.code == code)
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query).all()]


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
