"""Operator set-up: the database and key, and member platforms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from puhui.adapters import keystore
from puhui.adapters.sql import migrate
from puhui.bootstrap import App
from puhui.domain.errors import ConfigurationError, KeyMismatchError
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
        ConfigurationError: the database was initialised and its key file is missing.
    """
    existed = app.settings.key_file.exists()
    if not existed and migrate.current_revision(app.engine) is not None:
        # Never a new key for a database keyed before: it would pseudonymise everyone anew.
        raise ConfigurationError(
            f"this database was initialised with a subject key, and there is none at "
            f"{app.settings.key_file}: restore it from its backup, or name it with --key-file "
            f"or PUHUI_KEY_FILE"
        )
    secret = keystore.create_key(app.settings.key_file)
    migrate.upgrade(app.engine)
    fingerprint = key_fingerprint(secret)
    if app.directory().key_fingerprint(fingerprint) != fingerprint:
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
    stored = app.directory().key_fingerprint()
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
    app.directory().add_platform(info.code, info.name, info.created_at)
    return info


def list_platforms(app: App) -> list[PlatformInfo]:
    """Every registered platform, by code, with its stored records by status and the grams
    credited to citizens for them (replays are not counted again), from the tallies."""
    rows = app.directory().platforms()
    return [PlatformInfo(c, n, at, int(a), int(b), int(d), int(g)) for c, n, at, a, b, d, g in rows]
