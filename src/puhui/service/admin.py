"""Operator set-up: the database and key, and member platforms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, insert, select
from sqlalchemy.exc import IntegrityError

from puhui.adapters import keystore
from puhui.adapters.sql import migrate
from puhui.adapters.sql import tables as t
from puhui.bootstrap import App
from puhui.domain.errors import AlreadyExistsError, ConfigurationError, KeyMismatchError
from puhui.domain.subjects import key_fingerprint


@dataclass(frozen=True, slots=True)
class InitReport:
    """What `init` did."""

    key_created: bool
    revision: str | None
    key_file: str


def init(app: App) -> InitReport:
    """Create or upgrade the database and create the subject key if there is none.

    Raises:
        KeyMismatchError: the database was initialised with another key.
    """
    existed = app.settings.key_file.exists()
    secret = keystore.create_key(app.settings.key_file)
    migrate.upgrade(app.engine)
    fingerprint = key_fingerprint(secret)
    with app.engine.begin() as conn:
        stored = conn.execute(
            select(t.meta.c.value).where(t.meta.c.key == "key_fingerprint")
        ).scalar_one_or_none()
        if stored is None:
            conn.execute(insert(t.meta).values(key="key_fingerprint", value=fingerprint))
        elif stored != fingerprint:
            raise KeyMismatchError(
                f"{app.settings.key_file} is not the key this database was created with"
            )
    return InitReport(not existed, migrate.current_revision(app.engine), str(app.settings.key_file))


def check_ready(app: App) -> None:
    """Refuse to work on a database that is not initialised, out of date, or keyed otherwise.

    Raises:
        ConfigurationError: `puhui init` is needed.
        KeyMismatchError: the key file is not this database's.
    """
    current = migrate.current_revision(app.engine)
    if current is None:
        raise ConfigurationError("the database is not initialised: run `puhui init`")
    if current != migrate.head_revision():
        raise ConfigurationError("the database schema is out of date: run `puhui init`")
    with app.engine.connect() as conn:
        stored = conn.execute(
            select(t.meta.c.value).where(t.meta.c.key == "key_fingerprint")
        ).scalar_one_or_none()
    if stored != key_fingerprint(app.secret):
        raise KeyMismatchError(
            f"{app.settings.key_file} is not the key this database was created with"
        )


@dataclass(frozen=True, slots=True)
class PlatformInfo:
    """A member platform."""

    code: str
    name: str
    created_at: datetime
    credited: int = 0
    duplicate: int = 0
    rejected: int = 0
    credited_g: int = 0


def add_platform(app: App, code: str, name: str | None = None) -> PlatformInfo:
    """Register a member platform.

    Raises:
        AlreadyExistsError: a platform with that code exists.
        ConfigurationError: the code is empty or too long.
    """
    code = code.strip()
    if not code or len(code) > 64:
        raise ConfigurationError("a platform code has 1 to 64 characters")
    info = PlatformInfo(code, name or code, app.clock())
    try:
        with app.engine.begin() as conn:
            conn.execute(
                insert(t.platforms).values(
                    code=info.code, name=info.name, created_at=info.created_at
                )
            )
    except IntegrityError:
        raise AlreadyExistsError(f"platform {code!r} is already registered") from None
    return info


def list_platforms(app: App) -> list[PlatformInfo]:
    """Every registered platform, by code, with its stored records by status and the grams
    credited to citizens for them (replays are not counted again), from the tallies."""
    k = t.tallies.c
    p = t.platforms.c
    per_platform = (
        select(
            k.key,
            func.sum(k.records).filter(k.status == "credited").label("credited"),
            func.sum(k.records).filter(k.status == "duplicate").label("duplicate"),
            func.sum(k.records).filter(k.status == "rejected").label("rejected"),
            func.coalesce(func.sum(k.grams), 0).label("credited_g"),
        )
        .where(k.dimension == "platform")
        .group_by(k.key)
        .subquery()
    )
    s = per_platform.c
    query = (
        select(
            p.code,
            p.name,
            p.created_at,
            func.coalesce(s.credited, 0),
            func.coalesce(s.duplicate, 0),
            func.coalesce(s.rejected, 0),
            func.coalesce(s.credited_g, 0),
        )
        .select_from(t.platforms.outerjoin(per_platform, s.key == cast(p.id, String(12))))
        .order_by(p.code)
    )
    with app.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [PlatformInfo(c, n, at, int(a), int(b), int(d), int(g)) for c, n, at, a, b, d, g in rows]
