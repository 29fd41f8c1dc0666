"""How the ledger proves itself: the canonical encoding of a commit's transfers, the hash
chain over commits, and what a checkpoint signs. Stated once, here; docs/ledger.md says the
same for an auditor who reimplements it.

A *commit* is one database transaction that wrote transfers; each of its transfers names it.
A sealed commit has a *position* in the chain (1, 2, 3, … in the order it was sealed) and

- `digest` = SHA-256 of the concatenated lines of its transfers in id order, each line the
  transfer's columns in `TRANSFER_COLUMNS` order, written as `encode_value` says, separated by
  a tab and ended by a line feed, in UTF-8;
- `chain` = SHA-256(previous chain ‖ position ‖ commit id ‖ digest): the previous chain (the 32
  bytes of position − 1; 32 zero bytes before position 1), the position and the commit id as
  8-byte unsigned big-endian integers, the digest as its 32 bytes.

Editing, inserting, deleting or moving a transfer of a sealed commit changes its digest;
editing or re-ordering the chain breaks the link of the next position; rewriting the whole
chain from a position on changes the chain at every later position, which a signed checkpoint
(position, chain, time) kept outside the database then contradicts.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

# Every column of `transfers`, in the order a line of the encoding gives them.
TRANSFER_COLUMNS = (
    "id",
    "kind",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "record_seq",
    "batch_id",
    "linked_to",
    "operation_id",
    "reverses",
    "created_at",
    "expires_at",
    "commit_id",
)
# The chain before the first position.
GENESIS = bytes(32)
# The first bytes of every signed checkpoint message, so a checkpoint signature can never be
# taken for a signature of anything else.
CHECKPOINT_CONTEXT = "puhui ledger checkpoint v1"

Value = int | str | datetime | None


class ChainError(ValueError):
    """A value the encoding cannot represent (a float, a negative position, …)."""


def encode_time(at: datetime) -> str:
    """A time as UTC with microseconds: `2026-11-01T08:30:00.000000Z`. A time without a zone
    is taken as UTC (SQLite keeps times as written, in UTC).

    >>> from datetime import timedelta, timezone
    >>> encode_time(datetime(2026, 11, 1, 16, 30, tzinfo=timezone(timedelta(hours=8))))
    '2026-11-01T08:30:00.000000Z'
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_value(value: Value) -> str:
    r"""One column's text: null as `\N`, an integer in decimal, a time as `encode_time`, a text
    with backslash, tab, line feed and carriage return escaped as `\\`, `\t`, `\n`, `\r` (the
    text format of PostgreSQL's COPY).

    >>> [encode_value(v) for v in (None, 29, -1, "credit", "a\tb")]
    ['\\N', '29', '-1', 'credit', 'a\\tb']
    """
    # The common types first: a ledger is hashed row by row, millions of them.
    if type(value) is int:
        return str(value)
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    if isinstance(value, datetime):
        # The transfers of a commit mostly share their time: each is encoded once.
        return _encode_time(value)
    if isinstance(value, bool):
        raise ChainError(f"a ledger column is never a boolean: {value!r}")
    if isinstance(value, int):
        return str(int(value))
    raise ChainError(f"a ledger column holds {type(value).__name__}, which has no encoding")


_encode_time = lru_cache(maxsize=4096)(encode_time)


def transfer_line(row: Sequence[Value]) -> bytes:
    """One transfer's line: its columns (`TRANSFER_COLUMNS` order), tab-separated, ended by a
    line feed, in UTF-8."""
    if len(row) != len(TRANSFER_COLUMNS):
        raise ChainError(f"a transfer has {len(TRANSFER_COLUMNS)} columns, not {len(row)}")
    # Integers and nulls, most of a line, without a call each.
    return (
        "\t".join(
            [str(v) if type(v) is int else "\\N" if v is None else encode_value(v) for v in row]
        )
        + "\n"
    ).encode()


def commit_digest(rows: Iterable[Sequence[Value]]) -> bytes:
    """SHA-256 of a commit's transfers, given in id order (an empty commit: SHA-256 of
    nothing)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(transfer_line(row))
    return digest.digest()


class Digests:
    """The digest of each commit from transfers read in (commit id, id) order, one pass."""

    def __init__(self) -> None:
        self.found: dict[int, bytes] = {}
        self._commit: int | None = None
        self._hash = hashlib.sha256()

    def add(self, commit_id: int, row: Sequence[Value]) -> None:
        """Add the next transfer, of commit `commit_id`."""
        if commit_id != self._commit:
            self._close()
            self._commit = commit_id
        self._hash.update(transfer_line(row))

    def done(self) -> dict[int, bytes]:
        """The digest of each commit seen."""
        self._close()
        return self.found

    def _close(self) -> None:
        if self._commit is not None:
            self.found[self._commit] = self._hash.digest()
        self._commit = None
        self._hash = hashlib.sha256()


def _u64(n: int, what: str) -> bytes:
    if not 0 <= n < 2**64:
        raise ChainError(f"{what} {n} is not an unsigned 64-bit integer")
    return n.to_bytes(8, "big")


def link(previous: bytes, position: int, commit_id: int, digest: bytes) -> bytes:
    """The chain at a position: SHA-256(previous ‖ position ‖ commit id ‖ digest), the two
    numbers as 8-byte unsigned big-endian integers."""
    if len(previous) != 32 or len(digest) != 32:
        raise ChainError("a chain value and a digest are 32 bytes each")
    return hashlib.sha256(
        previous + _u64(position, "position") + _u64(commit_id, "commit id") + digest
    ).digest()


@dataclass(frozen=True, slots=True)
class Link:
    """One position of the chain as stored: the commit sealed there, its digest and the chain
    value, both as 64 lowercase hex digits."""

    position: int
    commit_id: int
    digest: str
    chain: str


def broken_links(links: Iterable[Link]) -> list[int]:
    """The positions that do not follow from the one before, given in position order: a
    position out of sequence (the first is 1, each next one more), or a chain value that is
    not `link` of the stored previous chain value, the position, the commit and the digest.
    Each position is judged against the stored value before it, so an edit names the edited
    position and the one after it."""
    broken: list[int] = []
    previous = GENESIS
    expected = 1
    for row in links:
        try:
            ok = (
                row.position == expected
                and row.chain
                == link(previous, row.position, row.commit_id, bytes.fromhex(row.digest)).hex()
            )
        except (ValueError, ChainError):
            ok = False
        if not ok:
            broken.append(row.position)
        try:
            previous = bytes.fromhex(row.chain)
        except ValueError:
            previous = GENESIS
        expected = row.position + 1
    return broken


def checkpoint_message(position: int, chain: str, at: datetime) -> bytes:
    """What a checkpoint signs, in UTF-8: four lines, each ended by a line feed:
    `puhui ledger checkpoint v1`, `position <n>`, `chain <64 hex digits>`, `at <encode_time>`.

    >>> message = checkpoint_message(2, "ab" * 32, datetime(2026, 11, 1, tzinfo=UTC))
    >>> message.splitlines()[1], message.splitlines()[3]
    (b'position 2', b'at 2026-11-01T00:00:00.000000Z')
    """
    if position < 0 or len(chain) != 64:
        raise ChainError("a checkpoint names a position ≥ 0 and a chain of 64 hex digits")
    return (
        f"{CHECKPOINT_CONTEXT}\nposition {position}\nchain {chain}\nat {encode_time(at)}\n"
    ).encode()


# DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before its 32 key bytes.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


def public_key_pem(public: bytes) -> str:
    """A raw 32-byte Ed25519 public key as a PEM SubjectPublicKeyInfo (RFC 8410)."""
    if len(public) != 32:
        raise ChainError("an Ed25519 public key is 32 bytes")
    body = base64.b64encode(_ED25519_SPKI + public).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
