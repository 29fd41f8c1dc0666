"""Ports: what the use cases need of storage, as protocols the adapters implement.

Intake (`service.ingest`) works through an `IntakeUnitOfWork`: one per transaction, its
`store` the reads and writes of that transaction, rolled back unless `commit` is called. The
SQL implementation is `adapters.sql.unit_of_work`; `bootstrap.App.intake` makes one.

The other use cases read and write through `Directory` (platforms, their keys, staff tokens,
the subject key's fingerprint), `Reads` (accounts, history, receipts, calculations), `Reports`
(statistics), `ReviewReads` (the review queue of held records), `Audit` (the ledger's
invariants), and for the personal carbon accounts `Rewards` (programmes, rewards, coupon
codes), `Operations` (what citizens do with their grams and points) and `Points` (the
programmes' jobs), each call its own transaction: the adapter's unit of work. `App` makes them
(`adapters.sql.directory`, `reads`, `reports`, `review_reads`, `audit`, `catalogue`,
`operations`, `points`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol

import pyarrow as pa

from puhui.domain.accounts import Outcome, Shard
from puhui.domain.consent import Event
from puhui.domain.federation import Answer, Incoming, Link, Outgoing
from puhui.domain.market import Certification
from puhui.domain.methodology import Methodology
from puhui.domain.review import OpenHold, Resolution
from puhui.domain.signing import Refusal

# A calculation to store: its columns and its trace (JSON), by the key it is stored under.
Traces = dict[str, tuple[dict[str, str], str]]
# The nonce of a signed request: key id, nonce, when it was seen (epoch milliseconds).
Nonce = tuple[str, str, int]


class IntakeStore(Protocol):
    """The reads and writes of intake within one transaction. Tables in and out are Arrow,
    with the schemas of `adapters.sql.intake`."""

    def platform_id(self, code: str) -> int:
        """The id of a registered platform (NotFoundError when there is none)."""
        ...

    def claim_nonces(self, nonces: Sequence[Nonce]) -> dict[tuple[str, str], Refusal]:
        """Remember signed requests' nonces; return the (key id, nonce) pairs refused, and why:
        used before (or twice among these), or of a key revoked since; forget nonces too old
        to come back."""
        ...

    def new_batch(self, platform_id: int, source: str, received_at: datetime) -> int:
        """Open a batch (a file, or API submissions settled together) and return its id."""
        ...

    def allocate(self, counter: str, n: int) -> int:
        """Reserve `n` consecutive numbers of a counter, held until the transaction ends, and
        return the first: the receive order of records."""
        ...

    def subject_ids(self, pseudonyms: Iterable[str]) -> pa.Table:
        """Register new pseudonyms and return the id of each one (`pseudonym`, `subject_id`)
        and whether this call registered it (`registered`)."""
        ...

    def existing_records(self, platform_id: int, record_ids: Iterable[str]) -> pa.Table:
        """Stored receipts of this platform's records with these ids."""
        ...

    def existing_claims(
        self, refs: Iterable[tuple[str, str]], trips: Iterable[tuple[int, int, int]]
    ) -> pa.Table:
        """Stored claims of the same (scene, ref), or stored trips of the same citizens that
        share time with these trips (subject id, start, end)."""
        ...

    def usage_day(self, subject_ids: Iterable[int], first_ms: int, last_ms: int) -> pa.Table:
        """Credited grams and records per citizen of these, scene and China day."""
        ...

    def quantification_ids(self, traces: Traces) -> dict[str, int]:
        """Store calculations not stored yet and return the id of every one by key."""
        ...

    def write_records(self, batch_id: int, platform_id: int, rows: pa.Table) -> None:
        """Store new records with their receipts."""
        ...

    def write_conflicts(self, batch_id: int, rows: Sequence[tuple[int, str, int]]) -> None:
        """Keep refused conflicting replays (receipt seq, digest, row) for audit."""
        ...

    def write_unkeyed(self, batch_id: int, rows: Sequence[tuple[int, str | None, str]]) -> None:
        """Keep rejections that have no (platform, record_id) of their own, for audit."""
        ...

    def post_credits(self, batch_id: int, first_seq: int, last_seq: int, at: datetime) -> int:
        """Post the credit transfers of the records numbered first_seq to last_seq; their count."""
        ...

    def signal_history(
        self, citizens: Iterable[int], devices: Iterable[str], lo_ms: int, hi_ms: int
    ) -> pa.Table:
        """Stored valid records of these citizens or devices starting between two instants."""
        ...

    def burst_history(
        self, platform_id: int, regions_scenes: Iterable[tuple[str, str]], lo_ms: int, hi_ms: int
    ) -> pa.Table:
        """The platform's stored valid records per region, scene and start minute."""
        ...

    def write_holds(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store why records were held."""
        ...

    def federated(self) -> bool:
        """Whether this node has joined a registry of the common mechanism: what it would
        credit waits for the registry's answer (`domain.federation`)."""
        ...

    def federation_tallies(self) -> dict[str, int]:
        """This node's figures for the registry: records by status, grams credited."""
        ...

    def open_holds(self, seqs: Iterable[int]) -> list[OpenHold]:
        """The held records among these, not decided yet."""
        ...

    def expiring(self, at: datetime) -> list[OpenHold]:
        """Held records still awaiting corroboration whose window ended by `at`."""
        ...

    def note_corroboration(self, seq: int, by_seq: int) -> None:
        """Remember that an authority reported a held record's behaviour."""
        ...

    def resolve_holds(self, resolutions: Sequence[Resolution], at: datetime) -> list[int]:
        """End held records: receipts, hold rows, pending grams and tallies."""
        ...

    def add_to_batch(self, batch_id: int, counts: dict[str, int], credited_g: int) -> None:
        """Add a settled chunk's counts to its batch."""
        ...

    def add_to_tallies(
        self,
        platform_id: int,
        stored: pa.Table,
        first_seq: int,
        last_seq: int,
        usage: pa.Table,
        registered: AbstractSet[int] = frozenset(),
    ) -> None:
        """Add a settled chunk's stored records to the statistics' tallies; `usage` is the
        chunk's `usage_day` lookup (who was credited before, in the chunk's months) and
        `registered` the citizens the chunk registered (counted nowhere before it)."""
        ...

    def claims_mark(self) -> tuple[int, int]:
        """The last stored record's seq (0 when none) and the number of erasures made: what a
        copy of the stored records must hold to be in step."""
        ...

    def stored_after(self, after_seq: int, up_to_seq: int, size: int) -> Iterator[pa.Table]:
        """Stored records with seq in (after_seq, up_to_seq], in seq order, `size` at a time,
        each with its citizen's pseudonym (`adapters.sql.intake.STORED_RECORDS`)."""
        ...


class FederationLink(Protocol):
    """A node's link to the common mechanism's registry (`domain.federation`), in the unit of
    work's transaction."""

    def lock(self) -> Link | None:
        """The link, locked for this transaction: one sync of a node at a time."""
        ...

    def link(self) -> Link | None:
        """The link, if this node joined a registry."""
        ...

    def join(self, node: str, url: str, registry_key: str, at: datetime) -> int:
        """Join a registry; the first record seq registered (`RefusedError`: joined already)."""
        ...

    def unanswered(self) -> tuple[int, bytes] | None:
        """The oldest batch sent and not answered: (number, body as signed)."""
        ...

    def outgoing(self, link: Link, limit: int) -> Outgoing:
        """What the next batch holds."""
        ...

    def store_batch(
        self,
        number: int,
        body: bytes,
        claims: Sequence[tuple[int, str]],
        withdrawn: Sequence[int],
        out: Outgoing,
        at: datetime,
    ) -> None:
        """Keep a batch as it will be signed and sent, with what it takes the node through."""
        ...

    def store_watermark(self, out: Outgoing) -> None:
        """Take the node through certified credits that carry no claim."""
        ...

    def certifications(self, accepted: Sequence[str], refused: Sequence[tuple[str, str]]) -> None:
        """What the registry said of a batch's certifications."""
        ...

    def claims_of(self, ids: Iterable[str]) -> dict[str, int]:
        """The record seq of each of these claim ids."""
        ...

    def claim_ids(self, seqs: Iterable[int]) -> dict[int, str]:
        """The claim id of each of these records, where it has one."""
        ...

    def answered(self, number: int, answer: bytes, signature: str, at: datetime) -> bool:
        """Record the registry's answer to a batch; False when it was answered already."""
        ...

    def verdicts(self, verdicts: Sequence[tuple[int, Answer]]) -> None:
        """Record the registry's verdict on each record's claim."""
        ...

    def update_hold_reasons(self, reasons: Sequence[tuple[int, str]]) -> None:
        """What held records still wait for, once the registry answered `first`."""
        ...

    def methodologies_to_register(
        self, versions: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The methodology versions this node has not registered yet."""
        ...

    def store_methodologies(self, number: int, versions: Sequence[tuple[str, str]]) -> None:
        """Keep the versions a batch registers."""
        ...

    def recognitions(self, number: int, verdicts: Sequence[tuple[str, str]]) -> None:
        """What the registry said of the versions a batch registered."""
        ...

    def units_refused(self, refused: Sequence[tuple[int, str]], at: datetime) -> int:
        """Give the units of transfers the registry refused back to their companies."""
        ...

    def received(
        self, incoming: Sequence[Incoming], oversight: dict[str, Any] | None, at: datetime
    ) -> int:
        """Apply the registry's inbox: units other nodes sent, and its figures."""
        ...

    def oversight(self) -> tuple[dict[str, Any], datetime] | None:
        """The registry's figures as last received, and when."""
        ...

    def status(self) -> dict[str, Any]:
        """What the link has done and what waits."""
        ...


class IntakeUnitOfWork(Protocol):
    """One transaction of intake: rolled back on leaving unless committed."""

    @property
    def store(self) -> IntakeStore:
        """The reads and writes of this transaction."""
        ...

    @property
    def federation(self) -> FederationLink:
        """The node's link to the common mechanism's registry, in this transaction."""
        ...

    def __enter__(self) -> IntakeUnitOfWork: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the transaction's writes durable."""
        ...


class Audit(Protocol):
    """The stored ledger, read to re-check its invariants (`service.ledger.CHECKS`)."""

    def breaking(self, checks: list[str]) -> dict[str, list[str]]:
        """For each named check, what breaks its invariant (ids or keys; empty: it holds)."""
        ...

    def size(self) -> tuple[int, int, int]:
        """Accounts, transfers and the grams credited to citizens."""
        ...


class Directory(Protocol):
    """Who may do what: member platforms and companies and their API keys, the exchange's staff
    tokens, and the fingerprint of the subject key the database was created with."""

    def key_fingerprint(self, fingerprint: str | None = None) -> str | None:
        """The stored fingerprint; with `fingerprint`, stored first if there is none."""
        ...

    def add_platform(self, code: str, name: str, at: datetime) -> None:
        """Register a platform (AlreadyExistsError when its code is taken)."""
        ...

    def platform_id(self, code: str) -> int:
        """The id of a registered platform (NotFoundError when there is none)."""
        ...

    def platform_name(self, code: str) -> str | None:
        """The display name of a registered platform; None when there is none."""
        ...

    def platforms(self) -> list[tuple[Any, ...]]:
        """(code, name, registered at, credited, duplicate, rejected, grams) of each platform."""
        ...

    def replace_key(self, platform: str, key_id: str, secret_digest: str, at: datetime) -> None:
        """Give a platform a new key and revoke the one it had, at once."""
        ...

    def key(self, key_id: str) -> tuple[str, str, datetime | None] | None:
        """(platform, secret digest, revoked at) of a key; None when unknown."""
        ...

    def replace_company_key(self, uscc: str, key_id: str, secret_digest: str, at: datetime) -> None:
        """Give a company a new key and revoke the one it had, at once (NotFoundError: no such
        company)."""
        ...

    def company_key(self, key_id: str) -> tuple[str, str, datetime | None] | None:
        """(company's code, secret digest, revoked at) of a key; None when no company holds it."""
        ...

    def add_staff_token(self, name: str, role: str, token_digest: str, at: datetime) -> None:
        """Store a staff token by its digest."""
        ...

    def revoke_staff_tokens(self, name: str, at: datetime) -> int:
        """Revoke a holder's active tokens; how many."""
        ...

    def staff(self, token_digest: str) -> tuple[str, str] | None:
        """(name, role) of the active staff token with this digest; None when none is."""
        ...


class Reads(Protocol):
    """The read side: citizens' accounts and history, platforms' receipts, and the stored
    inputs of each calculation (rows as tuples, in the order each method names)."""

    def account(self, pseudonym: str, limit: int) -> tuple[int, list[tuple[Any, ...]]] | None:
        """A citizen's grams and latest movements of grams, newest first, read together; None
        when the citizen has no account."""
        ...

    def history(self, pseudonym: str, before: int, limit: int) -> list[tuple[Any, ...]]:
        """A citizen's movements of grams and points with ids below `before`, newest first."""
        ...

    def credit(self, pseudonym: str, transfer_id: int) -> tuple[str, str] | None:
        """(platform, record id) of the record a credit to this citizen was for."""
        ...

    def holdings(self, pseudonym: str) -> list[tuple[str, str | None, int]] | None:
        """(kind, code, balance) of every account a citizen owns; None for a stranger."""
        ...

    def operations(self, pseudonym: str, limit: int) -> list[tuple[Any, ...]]:
        """(id, kind, actor, at, result JSON) of a citizen's operations, newest first."""
        ...

    def operation(self, operation: int) -> tuple[Any, ...] | None:
        """(kind, at, result JSON) of an operation; None when there is none."""
        ...

    def receipts(self, platform: str) -> Iterator[tuple[Any, ...]]:
        """Every stored receipt of a platform, in receive order, streamed, with when a held
        record was decided."""
        ...

    def receipts_page(
        self,
        platform: str,
        after: int,
        limit: int,
        received_from: datetime | None,
        received_to: datetime | None,
        record_id: str | None,
    ) -> list[tuple[Any, ...]]:
        """A page of a platform's receipts in receive order, after the one numbered `after`,
        with when a held record was decided."""
        ...

    def calculation(self, platform: str, record_id: str) -> tuple[Any, ...] | None:
        """A stored record's receipt and the inputs of its calculation; None without one."""
        ...


class Reports(Protocol):
    """Regulators' statistics: from the tallies, or recounted for a window of days."""

    def reductions(
        self, by: str, day_from: date | None, day_to: date | None
    ) -> list[tuple[Any, ...]]:
        """(key, grams, records, participants) per value of a dimension."""
        ...

    def totals(self, day_from: date | None, day_to: date | None) -> tuple[Any, ...]:
        """(grams, credited records, participants, platforms that credited, records)."""
        ...

    def outcomes(self, day_from: date | None, day_to: date | None) -> list[tuple[Any, ...]]:
        """(platform, status, reasons, records) of the stored records."""
        ...

    def duplicate_pairs(self, day_from: date | None, day_to: date | None) -> list[tuple[Any, ...]]:
        """(reporting platform, platform received first, reason, records) of duplicates."""
        ...

    def outcome_participants(self, reasons: Sequence[str]) -> list[tuple[Any, ...]]:
        """(status, reason, distinct citizens) of the records that were not credited, per
        status and each of these reason codes (a record with several reasons counts under
        each); a record without a citizen counts none."""
        ...


class ReviewReads(Protocol):
    """The review queue (spec v1.1): held records with their evidence, and each platform's
    review rates (rows as tuples, in the order each method names; never an identifier of a
    citizen or a device)."""

    def queue(
        self,
        platform: str | None,
        reason: str | None,
        scene: str | None,
        region: str | None,
        state: str,
        limit: int,
        after_seq: int,
    ) -> list[tuple[Any, ...]]:
        """Held records numbered above `after_seq`, in receive order, open, decided or all."""
        ...

    def item(
        self, seq: int, window_ms: int, device_window_ms: int
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], tuple[Any, ...] | None, int | None] | None:
        """A held record, the records of its citizen starting within `window_ms` of it, the
        corroborating record, and how many citizens its device served within
        `device_window_ms`; None when the record was never held."""
        ...

    def rates(self) -> list[tuple[Any, ...]]:
        """Records, held records and how they ended, per platform."""
        ...

    def citizen_holds(self, pseudonym: str, limit: int) -> list[tuple[Any, ...]]:
        """A citizen's records that were held, newest first."""
        ...


class Rewards(Protocol):
    """The catalogue of the personal carbon accounts: points programmes, rewards with their
    stock in parts, coupon codes (rows as tuples, in the order each method names)."""

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
        """Store a programme (AlreadyExistsError: taken; NotFoundError: no such platform)."""
        ...

    def programmes(self) -> list[tuple[Any, ...]]:
        """(code, name, platform, points per kg, expiry days, starts at) of each programme."""
        ...

    def add_reward(self, values: dict[str, Any], shards: Sequence[Shard]) -> None:
        """Store a reward (the columns of `rewards`, `programme` by code) with its stock in
        these parts (AlreadyExistsError: taken; NotFoundError: no such programme)."""
        ...

    def add_codes(self, reward: str, codes: Sequence[str]) -> int:
        """Add coupon codes after those there; how many were new (NotFoundError, InputError:
        not a coupon)."""
        ...

    def rewards(self, code: str | None) -> list[tuple[Any, ...]]:
        """(code, name, kind, issuer, project, price g, price points, programme, stock,
        remaining, per-citizen limit, valid from, valid to) of each reward, or of one."""
        ...


class Operations(Protocol):
    """Citizens' operations, each one transaction under the client's idempotency key (`digest`:
    of the request, to tell a re-sent request from another one under the same key). Each
    raises `RefusedError` (a code of `domain.accounts`) or `NotFoundError` and then changes
    nothing."""

    def redeem(
        self, pseudonym: str, reward: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Redeem a reward."""
        ...

    def retire(
        self,
        pseudonym: str,
        grams: int,
        footprint: Mapping[str, Any] | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """Retire grams against the citizen's own footprint."""
        ...

    def give(
        self,
        pseudonym: str,
        to: str,
        amount: int,
        programme: str | None,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """Give grams, or a programme's points, to another citizen."""
        ...

    def reverse(
        self, entry: int, reason: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Reverse an entry by its mirror."""
        ...


class Points(Protocol):
    """A points programme's jobs, one transaction and one ledger entry a call."""

    def award(self, programme: str, at: datetime) -> tuple[int, int]:
        """Award the credits not awarded yet: (points, credits)."""
        ...

    def expire(self, programme: str, at: datetime) -> tuple[int, int]:
        """Expire what lapsed unused: (points, accounts)."""
        ...


class Erasures(Protocol):
    """Citizens erased (`domain.erasure`)."""

    def erase(self, pseudonym: str, tombstone: str, by: str, grounds: str, at: datetime) -> Any:
        """Destroy the link from a pseudonym to its account, delete the behaviour details of
        its records and record the erasure, in one transaction; the erasure's
        (id, records erased) or None when no citizen has the pseudonym."""
        ...

    def scrub(self) -> bool | None:
        """Make what an erasure deleted unrecoverable from the database's files where the
        engine allows it (the write-ahead log on SQLite): whether it was done, None where the
        engine does it by itself (PostgreSQL's vacuum)."""
        ...

    def erasures(self) -> list[tuple[Any, ...]]:
        """(id, at, by, grounds, records) of every erasure, oldest first."""
        ...


class SmsGateway(Protocol):
    """Sends a text message to a mobile number (`adapters.sms`)."""

    def send(self, canonical: str, text: str, at: datetime) -> None:
        """Send `text` to a canonical mobile number (`m:13800138000`)."""
        ...


class Consent(Protocol):
    """The consent ledger (`domain.consent`), member platforms' redirect URIs, and one-time
    codes kept by their keyed digests (rows as tuples, in the order each method names)."""

    def append(self, event: Event) -> None:
        """Append an event to the consent ledger (NotFoundError: no such platform)."""
        ...

    def events(self, *, grant_id: str | None = None, pseudonym: str | None = None) -> list[Event]:
        """The events of one grant, or of every grant of one citizen, in order."""
        ...

    def add_redirect_uri(self, platform: str, uri: str, at: datetime) -> bool:
        """Register a redirect URI of a platform; False when it was already (NotFoundError)."""
        ...

    def redirect_uris(self, platform: str) -> list[str] | None:
        """A platform's redirect URIs, oldest first; None when there is no such platform."""
        ...

    def add_sign_in_code(
        self,
        challenge: str,
        pseudonym: str,
        digest: str,
        version: int,
        at: datetime,
        expires_at: datetime,
    ) -> None:
        """Store a sign-in code sent, by its digest."""
        ...

    def sign_in_codes_since(self, pseudonym: str, since: datetime) -> int:
        """How many codes were sent to a citizen since a moment."""
        ...

    def try_sign_in_code(self, challenge: str, at: datetime) -> tuple[Any, ...] | None:
        """Count one attempt at a challenge and read it, in one transaction: (pseudonym,
        digest, key version, expires at, attempts including this one, used at); None when
        there is no such challenge."""
        ...

    def use_sign_in_code(self, challenge: str, at: datetime) -> bool:
        """Mark a code used; False when it was already."""
        ...

    def add_authorization_code(self, values: Mapping[str, Any]) -> None:
        """Store an authorization code (the columns of `authorization_codes`, `platform` by
        code)."""
        ...

    def claim_authorization_code(
        self, digest: str, platform: str, at: datetime
    ) -> dict[str, Any] | None:
        """Take an unused, unexpired authorization code of a platform for good, in one
        statement: its columns, or None (unknown, used, expired, another platform's)."""
        ...

    def add_refresh_token(self, values: Mapping[str, Any]) -> None:
        """Store a refresh token (the columns of `refresh_tokens`, `platform` by code)."""
        ...

    def claim_refresh_token(
        self, digest: str, platform: str, at: datetime, *, take: bool = True
    ) -> dict[str, Any] | None:
        """Take an unused, unexpired refresh token of a platform for good (with `take`; else
        only read it): its columns, or None."""
        ...


class LedgerChain(Protocol):
    """The ledger's hash chain (`domain.chain`): commits sealed into it, its head, and the
    signed checkpoints of the head."""

    def seal(self, everything: bool = True) -> int:
        """Seal the committed commits not sealed yet, in id order; how many were sealed.
        Without `everything`, a quick seal of the recent ones (a commit that took long to
        commit may be left to the next full seal)."""
        ...

    def head(self) -> tuple[int, str]:
        """The last position sealed and its chain value, hex (0 and 64 zeros when empty)."""
        ...

    def chain_at(self, position: int) -> str | None:
        """The chain value at a position (64 zeros at 0), or None past the head."""
        ...

    def unsealed(self) -> int:
        """How many committed commits are not sealed yet."""
        ...

    def add_checkpoint(
        self, position: int, chain: str, at: datetime, key_version: int, signature: str
    ) -> int:
        """Store a signed checkpoint (signature hex); its id."""
        ...


class Signer(Protocol):
    """Ed25519 signatures under the versions of the `checkpoints` key."""

    def sign(self, message: bytes) -> tuple[int, bytes]:
        """Sign with the version that signs now: (version, signature)."""
        ...

    def public_keys(self) -> dict[int, bytes]:
        """The raw public key of every version."""
        ...

    def verify(self, version: int, message: bytes, signature: bytes) -> bool:
        """Whether a signature is that of the message under a version."""
        ...


class Market(Protocol):
    """The carbon market's writes (`domain.market`), each one transaction under the client's
    idempotency key, or refused (`RefusedError`, `NotFoundError`) with nothing changed."""

    def add_company(self, uscc: str, name: str, at: datetime) -> int:
        """Register a company."""
        ...

    def certify(
        self, what: Certification, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Certify a month's credits into the pool and issue its whole units as a batch."""
        ...

    def sell(
        self,
        uscc: str,
        units: int,
        unit_price_fen: int,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """The exchange sells units to a company."""
        ...

    def transfer(
        self, uscc: str, to: str, units: int, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """A company moves units to another."""
        ...

    def export(
        self,
        uscc: str,
        to_node: str,
        to_company: str,
        to_name: str,
        units: int,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """A company sends units to a company at another node."""
        ...

    def retire(
        self,
        uscc: str,
        units: int,
        beneficiary: str,
        purpose: str,
        key: str,
        digest: str,
        actor: str,
        at: datetime,
    ) -> Outcome:
        """A company retires units."""
        ...

    def reverse_credit(
        self, entry: int, reason: str, key: str, digest: str, actor: str, at: datetime
    ) -> Outcome:
        """Reverse a certified credit, drawing on the buffer."""
        ...


class MarketReads(Protocol):
    """The carbon market's read side (rows as dicts; `adapters/sql/market_reads.py` says the
    keys of each)."""

    def batches(self) -> list[dict[str, Any]]: ...
    def batch(self, batch_id: int) -> dict[str, Any] | None: ...
    def batch_of_serial(self, exchange: str, number: int) -> int | None: ...
    def blocks(
        self, batch_id: int | None = None, uscc: str | None = None
    ) -> list[dict[str, Any]]: ...
    def companies(self, uscc: str | None = None) -> list[dict[str, Any]]: ...
    def company(self, uscc: str) -> dict[str, Any] | None: ...
    def retirements(self, retirement: int | None = None) -> list[dict[str, Any]]: ...
    def trades(self) -> list[dict[str, Any]]: ...
    def moves(self, operation: int) -> list[dict[str, Any]]: ...
    def draws(self) -> list[dict[str, Any]]: ...
    def pool(self) -> list[dict[str, Any]]: ...
    def credit_batches(self, pseudonym: str, entry: int) -> list[dict[str, Any]] | None: ...
    def audit_path(self, batch_id: int, index: int) -> tuple[bytes, list[bytes]]: ...
    def leaves(self, batch_id: int) -> list[dict[str, Any]]: ...


class Restatements(Protocol):
    """Restatements of credits to a corrected methodology version (`domain.restatement`), each
    chunk of citizens its own transaction; a dry run one transaction, rolled back."""

    def restate(self, target: Methodology, actor: str, at: datetime, dry_run: bool) -> Any:
        """Restate the credits of the versions `target` supersedes; what it did (or would)."""
        ...

    def listing(self) -> list[dict[str, Any]]:
        """Every restatement with its totals, oldest first."""
        ...

    def of_record(self, platform: str, record_id: str) -> list[dict[str, Any]]:
        """A record's restatements, oldest first: each one's version, grams before and now,
        when, the stored calculation now (`calculation`: digest, methodology, scene, region,
        material, unit, reduction per unit, trace) and its trace (JSON)."""
        ...

    def stored(self, platform: str, record_id: str) -> tuple[Any, ...] | None:
        """(amount × 1000, grams, calculation as in `of_record`) of a quantified record as
        received; None when there is none."""
        ...
