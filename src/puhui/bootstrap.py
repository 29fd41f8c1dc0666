"""The composition root: settings → engine, key, methodology catalogue, clock."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from puhui.adapters import keystore, sms
from puhui.adapters.checkpoint_keys import CheckpointSigner
from puhui.adapters.methodology_files import load_catalogue
from puhui.adapters.sql.audit import SqlAudit
from puhui.adapters.sql.catalogue import SqlRewards
from puhui.adapters.sql.chain import SqlChain
from puhui.adapters.sql.consent import SqlConsent
from puhui.adapters.sql.directory import SqlDirectory
from puhui.adapters.sql.engine import make_engine
from puhui.adapters.sql.erasure import SqlErasures
from puhui.adapters.sql.market import SqlMarket
from puhui.adapters.sql.market_reads import SqlMarketReads
from puhui.adapters.sql.operations import Calls, PgOperations, SqlOperations
from puhui.adapters.sql.points import SqlPoints
from puhui.adapters.sql.reads import SqlReads
from puhui.adapters.sql.reports import SqlReports
from puhui.adapters.sql.restatement import SqlRestatements
from puhui.adapters.sql.review_reads import SqlReviewReads
from puhui.adapters.sql.unit_of_work import SqlIntakeUnitOfWork
from puhui.config import Settings
from puhui.domain.evidence import NO_EVIDENCE, Evidence
from puhui.domain.evidence import load as load_evidence
from puhui.domain.methodology import Catalogue
from puhui.service.ports import (
    Audit,
    Consent,
    Directory,
    Erasures,
    IntakeUnitOfWork,
    LedgerChain,
    Market,
    MarketReads,
    Operations,
    Points,
    Reads,
    Reports,
    Restatements,
    ReviewReads,
    Rewards,
    Signer,
    SmsGateway,
)


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass
class App:
    """Everything a use case needs, built once per process by `bootstrap`."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = field(default=utc_now)
    # What the use cases of this process remember between calls (e.g. API keys verified).
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def catalogue(self) -> Catalogue:
        """The shipped methodologies and factors."""
        return load_catalogue()

    @cached_property
    def evidence(self) -> Evidence:
        """The evidence policies in force: the latest shipped version, another file
        (`PUHUI_EVIDENCE=path`), or none (`PUHUI_EVIDENCE=none`: every record is settled as
        v1 says, nothing is held)."""
        given = os.environ.get("PUHUI_EVIDENCE", "").strip()
        if given == "none":
            return NO_EVIDENCE
        return load_evidence(Path(given) if given else None)

    @cached_property
    def keyring(self) -> keystore.Keyring:
        """The subject key and each purpose's keys (read on first use)."""
        return keystore.Keyring(self.settings.key_file)

    @property
    def secret(self) -> bytes:
        """The subject key, which pseudonymises identifiers."""
        return self.keyring.subject

    def key(self, purpose: str) -> tuple[int, bytes]:
        """The version of a purpose's key that signs now, and the key
        (`adapters.keystore.PURPOSES`)."""
        return self.keyring.current(purpose)

    def keys(self, purpose: str) -> dict[int, bytes]:
        """Every version of a purpose's key, to verify what an older one signed."""
        return self.keyring.versions(purpose)

    def intake(self) -> IntakeUnitOfWork:
        """A new unit of work of intake (one transaction; enter it, commit it)."""
        return SqlIntakeUnitOfWork(self.engine)

    def audit(self) -> Audit:
        """The ledger's audit queries."""
        return SqlAudit(self.engine, self.catalogue, self.checkpoint_signer())

    def chain(self) -> LedgerChain:
        """The ledger's hash chain: sealing, its head, checkpoints."""
        return SqlChain(self.engine)

    def checkpoint_signer(self) -> Signer:
        """Signatures under the `checkpoints` key's versions (read on first use)."""
        return CheckpointSigner(lambda: self.key("checkpoints"), lambda: self.keys("checkpoints"))

    def directory(self) -> Directory:
        """Platforms, their keys, staff tokens and the subject key's fingerprint."""
        return SqlDirectory(self.engine)

    def reads(self) -> Reads:
        """The read side of accounts and receipts."""
        return SqlReads(self.engine)

    def reports(self) -> Reports:
        """Regulators' statistics."""
        return SqlReports(self.engine)

    def review_reads(self) -> ReviewReads:
        """The review queue of held records and each platform's review rates."""
        return SqlReviewReads(self.engine)

    def rewards(self) -> Rewards:
        """Points programmes, rewards and coupon codes."""
        return SqlRewards(self.engine)

    @cached_property
    def calls(self) -> Calls:
        """The connections the operations' functions are called on (PostgreSQL)."""
        return Calls(self.engine)

    def operations(self) -> Operations:
        """Citizens' operations: one PL/pgSQL call each on PostgreSQL, Python over SQL on
        SQLite."""
        if self.engine.dialect.name == "postgresql":
            return PgOperations(self.engine, self.calls)
        return SqlOperations(self.engine)

    def market(self) -> Market:
        """The carbon market's writes: certification, units sold, moved and retired."""
        return SqlMarket(self.engine)

    def market_reads(self) -> MarketReads:
        """The carbon market's registry: batches, holdings, retirements, proofs' leaves."""
        return SqlMarketReads(self.engine)

    def erasures(self) -> Erasures:
        """Citizens erased, and the erasure of one."""
        return SqlErasures(self.engine)

    def consent(self) -> Consent:
        """The consent ledger, redirect URIs and one-time codes."""
        return SqlConsent(self.engine)

    def sms(self) -> SmsGateway:
        """What sends sign-in codes: the console with `PUHUI_SMS=console`, else the outbox
        file (`Settings.outbox`)."""
        if os.environ.get("PUHUI_SMS") == "console":
            return sms.ConsoleSms()
        return sms.OutboxSms(self.settings.outbox())

    def points(self) -> Points:
        """The points programmes' jobs."""
        return SqlPoints(self.engine)

    def restatements(self) -> Restatements:
        """Restatements of credits to corrected methodology versions."""
        return SqlRestatements(self.engine, self.catalogue)

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()
        if "calls" in self.__dict__:
            self.calls.close()


def bootstrap(settings: Settings, clock: Callable[[], datetime] = utc_now) -> App:
    """Build the application for some settings."""
    return App(settings=settings, engine=make_engine(settings.database_url), clock=clock)
