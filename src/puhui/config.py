"""Settings: which database, which key file. Read from the environment or given explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from puhui.adapters.sql.engine import DEFAULT_URL
from puhui.domain.disclosure import DEFAULT_MIN_CELL
from puhui.domain.errors import ConfigurationError

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
        min_cell: the smallest number of distinct citizens a published figure may describe
            (`PUHUI_MIN_CELL`, 10 by default; `domain.disclosure`). Operators and regulators
            read every figure.
        sms_outbox: where sign-in codes are written when no SMS gateway sends them
            (`PUHUI_SMS_OUTBOX`; by default beside an SQLite database, `puhui.db` →
            `puhui.sms.jsonl`, else beside the key file); `PUHUI_SMS=console` prints them on
            standard error instead.
        exchange_code: the carbon exchange this node runs for; `PUHUI_EXCHANGE` when None.
    """

    database_url: str
    key_file: Path
    min_cell: int = DEFAULT_MIN_CELL
    sms_outbox: Path | None = None
    exchange_code: str | None = None

    @classmethod
    def load(cls, database_url: str | None = None, key_file: str | Path | None = None) -> Settings:
        """Build settings from arguments, then the environment, then the defaults."""
        url = database_url or os.environ.get("PUHUI_DATABASE_URL") or DEFAULT_URL
        key = key_file or os.environ.get("PUHUI_KEY_FILE")
        outbox = os.environ.get("PUHUI_SMS_OUTBOX")
        return cls(
            url,
            Path(key) if key else default_key_file(url),
            min_cell_from_env(),
            Path(outbox) if outbox else None,
        )

    def exchange(self) -> str:
        """The carbon exchange this node runs for (`PUHUI_EXCHANGE`: one of the codes of
        `domain.market.EXCHANGES`, `BJ` by default): its code starts the serial numbers of the
        units it certifies, and it names the node in the common mechanism."""
        given = self.exchange_code or os.environ.get("PUHUI_EXCHANGE", "")
        return given.strip().upper() or "BJ"

    def spark_dir(self) -> str:
        """Where Spark ingests keep the claims store and stage their jobs
        (`PUHUI_SPARK_DIR`: a path, or a URI every executor reaches); by default beside an
        SQLite database (`puhui.db` → `puhui.spark`), else beside the key file."""
        given = os.environ.get("PUHUI_SPARK_DIR", "").strip()
        if given:
            return given
        url = make_url(self.database_url)
        if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
            return str(Path(url.database).with_suffix(".spark").resolve())
        return str(self.key_file.with_name("puhui.spark").resolve())

    def outbox(self) -> Path:
        """The SMS outbox file: `sms_outbox`, or its default beside the database."""
        if self.sms_outbox is not None:
            return self.sms_outbox
        url = make_url(self.database_url)
        if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
            return Path(url.database).with_suffix(".sms.jsonl")
        return self.key_file.with_name("puhui.sms.jsonl")


def min_cell_from_env() -> int:
    """`PUHUI_MIN_CELL`, or the default.

    Raises:
        ConfigurationError: not a whole number of at least 1.
    """
    given = os.environ.get("PUHUI_MIN_CELL", "").strip()
    if not given:
        return DEFAULT_MIN_CELL
    if not given.isascii() or not given.isdigit() or int(given) < 1:
        raise ConfigurationError(
            f"PUHUI_MIN_CELL must be a whole number of at least 1, not {given!r}"
        )
    return int(given)


def default_key_file(database_url: str) -> Path:
    """The key file that goes with a database when none is named."""
    url = make_url(database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return Path(url.database).with_suffix(".key")
    return Path("puhui.key")
