"""Settings: which database, which key file. Read from the environment or given explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from puhui.adapters.sql.engine import DEFAULT_URL

# Under `puhui serve`, how much lower the HTTP workers' scheduling priority is (`os.nice`).
WORKERS_NICE_ENV = "PUHUI_WORKERS_NICE"


@dataclass(frozen=True, slots=True)
class Settings:
    """Where puhui keeps its state.

    Attributes:
        database_url: SQLAlchemy URL; an SQLite file in the working directory by default,
            `postgresql://…` in production (`PUHUI_DATABASE_URL`).
        key_file: file holding the secret that pseudonymises subjects (`PUHUI_KEY_FILE`); by
            default beside an SQLite database (`puhui.db` → `puhui.key`), else `./puhui.key`.
            It is never stored in the database.
    """

    database_url: str
    key_file: Path

    @classmethod
    def load(cls, database_url: str | None = None, key_file: str | Path | None = None) -> Settings:
        """Build settings from arguments, then the environment, then the defaults."""
        url = database_url or os.environ.get("PUHUI_DATABASE_URL") or DEFAULT_URL
        key = key_file or os.environ.get("PUHUI_KEY_FILE")
        return cls(url, Path(key) if key else default_key_file(url))


def default_key_file(database_url: str) -> Path:
    """The key file that goes with a database when none is named."""
    url = make_url(database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return Path(url.database).with_suffix(".key")
    return Path("puhui.key")
