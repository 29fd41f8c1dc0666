"""Ledger verification: every invariant re-checked from the stored rows, and the ledger's
proof of itself (docs/ledger.md): commits sealed into a hash chain, signed checkpoints.

`verify` returns a list of violations (empty when the ledger is sound) and never stops at the
first, like a batch's checks. Each check is one set-based query (`service.ports.Audit`, on SQL
`adapters.sql.audit`), so it scales with the ledger; those that re-hash the sealed transfers
and verify signatures, and those that re-derive each credit with the methodology catalogue,
are computed by the adapter in one pass over rows read in chunks. `verify` never seals:
sealing a forged row would bless it. `seal` links the commits written since into the chain;
`checkpoint` seals and signs the chain's head, a line of which the auditor keeps outside the
database.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from puhui.bootstrap import App
from puhui.domain import chain as rules
from puhui.domain.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant, with up to ten examples."""

    check: str
    count: int
    examples: tuple[str, ...]


# The invariants, by the name `ledger verify` reports them under.
CHECKS: dict[str, str] = {
    "transfer_not_positive": "every transfer moves a positive amount between two accounts",
    "balance_mismatch": (
        "every account's balance is what its transfers brought in less what they took out"
    ),
    "ledger_total": (
        "all balances of a unit together sum to zero: every gram and point is in one place"
    ),
    "credit_missing": (
        "every credited record with grams has its credit transfer, or its hold and the release "
        "that posted it"
    ),
    "credit_without_credited_record": (
        "every credit transfer belongs to a credited record, and only credits and holds to records"
    ),
    "hold_missing": (
        "every held record has its open hold row and, with grams, its pending hold transfer "
        "not settled yet"
    ),
    "hold_mismatch": (
        "a hold moves exactly the held grams from its platform's issuance account for its "
        "methodology to the citizen's held account, and is settled as its record ended: "
        "open while held, released when credited, voided when rejected"
    ),
    "hold_decision_mismatch": (
        "every hold row names a stored record, open while the record is held, and once "
        "decided with the record's final status, after it was received"
    ),
    "pending_settled_wrongly": (
        "a release or a void settles a hold: the same amount out of its held account, into the "
        "citizen's account (release) or back to the issuing account (void)"
    ),
    "credit_amount_mismatch": (
        "a credit transfer moves exactly the record's grams from its platform's issuance "
        "account for its methodology to the record's citizen"
    ),
    "balance_orphaned": "every balance belongs to an account",
    "account_orphaned": "every account names an existing citizen or platform",
    "transfer_orphaned": (
        "every transfer moves between existing accounts, names an existing record when it "
        "names one, and is linked, if at all, to the first transfer of its entry"
    ),
    "record_orphaned": "every record names an existing platform, batch, citizen and calculation",
    "transfer_mixed_units": "no transfer moves grams into points or points into grams",
    "balance_negative": (
        "no citizen, held, points, retired, reward or expired account is below zero"
    ),
    "retired_taken_out": "nothing is ever taken out of retired grams",
    "reversal_mismatch": (
        "a reversal (a void too) mirrors the transfer it reverses: the same amount, the other way"
    ),
    "stock_mismatch": (
        "what a reward handed out (its parts' units taken, a coupon's codes claimed) is what "
        "was redeemed, counted from its redemptions and from the transfers paid into its parts, "
        "and its stock is what its parts were allotted (a coupon: its codes)"
    ),
    "ref_credited_twice": "no (scene, ref) is credited twice",
    "trip_credited_twice": (
        "no two credited trips of a citizen overlap by more than half of the shorter"
    ),
    "tally_mismatch": (
        "the statistics' tallies (dimension:key:status:reason) recount exactly from records"
    ),
    "transfer_uncommitted": "every transfer names the ledger commit that wrote it",
    "commit_altered": (
        "every sealed commit's transfers still give its digest: none edited, inserted, deleted "
        "or moved since it was sealed"
    ),
    "chain_broken": (
        "the hash chain recomputes: positions 1, 2, 3, … each linking the one before to its "
        "commit and digest, and each naming an existing commit"
    ),
    "checkpoint_invalid": (
        "every stored checkpoint is signed by a version of the checkpoints key and names the "
        "chain the ledger has at its position"
    ),
    "calculation_altered": (
        "every stored calculation is what its methodology version computes, bit for bit, with "
        "the factors its trace names (by id, each one the version may use there): per-unit "
        "figure, formulas, factors, fallback, trace and digest"
    ),
    "credit_not_recomputable": (
        "every credited record's grams are its stored amount times its calculation, rounded "
        "down, within its methodology's caps given the citizen's earlier credits (restated "
        "ones as they stood when it was received), and it names its calculation's methodology"
    ),
    "credit_misrestated": (
        "every restated credit follows from its receipt through its restatements, to its "
        "restatement's target version; its citizen's scene settles, under the calculations "
        "now and the caps re-applied, to the grams its records hold now; and each `restated` "
        "transfer is the net change of its account's credits of one platform"
    ),
    "pool_mismatch": (
        "every certification pool holds the credits certified into it less what its batches "
        "and reversals took, and what restatements posted to it; its certify transfers brought "
        "exactly those credits"
    ),
    "credit_certified_wrongly": (
        "a certified credit is a credited record's whole credit, of its citizen, never reversed "
        "on the citizen's account, and no more of it is in batches than it has"
    ),
    "units_not_backed": (
        "a batch's units × 1 000 000 g are the grams its credits gave and the pool moved into "
        "its units and buffer accounts, which hold them less the buffer's draws, and what "
        "restatements posted to its buffer"
    ),
    "serials_not_partitioned": (
        "the serial blocks of holdings, retirements, the buffer and cancelled units partition "
        "each batch's numbers: no gap, no overlap; batches never share a number"
    ),
    "holdings_mismatch": "who holds how many units of each batch is what the moves leave there",
    "unit_move_invalid": (
        "units move only as the market allows (issued, sold, transferred, retired by their "
        "holder, cancelled out of the buffer), never out of a retirement, and each trade and "
        "retirement moved the units it says"
    ),
    "batch_root_mismatch": "each batch's Merkle root is the root of its credits as stored",
}


# Checked only when the auditor's file of checkpoints is given (`verify(checkpoints=…)`).
FILE_CHECKS: dict[str, str] = {
    "checkpoint_file_mismatch": (
        "every checkpoint in the auditor's file (by line) is signed by a version of the "
        "checkpoints key and names the chain the ledger has at its position"
    ),
}


def describe(check: str) -> str:
    """What a check's invariant says."""
    return CHECKS.get(check) or FILE_CHECKS[check]


def verify(app: App, checkpoints: Iterable[str] | None = None) -> list[Violation]:
    """Re-check every ledger invariant, and with `checkpoints` (the lines of the auditor's
    file) each checkpoint kept there; an empty list means the ledger is sound."""
    breaking = app.audit().breaking(list(CHECKS))
    if checkpoints is not None:
        breaking["checkpoint_file_mismatch"] = _file_mismatches(app, checkpoints)
    return [Violation(name, len(rows), tuple(rows[:10])) for name, rows in breaking.items() if rows]


def unsealed(app: App) -> int:
    """How many commits are not sealed into the chain yet (`seal` links them)."""
    return app.chain().unsealed()


def seal(app: App, everything: bool = True) -> int:
    """Link every commit written since the last seal into the hash chain; how many. Without
    `everything`, a quick seal of the recent commits (`service.ports.LedgerChain.seal`)."""
    return app.chain().seal(everything)


def seal_quietly(app: App, everything: bool = True) -> int:
    """`seal`, for writers that seal after their own commit: a failure is logged, never
    raised (what was not sealed is sealed by the next run)."""
    try:
        return seal(app, everything)
    except Exception as error:
        log.warning("sealing the ledger failed (%s); the next seal will", type(error).__name__)
        return 0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement of the chain's head: its position and chain value (hex) at a time,
    signed (Ed25519, hex) by a version of the `checkpoints` key."""

    position: int
    chain: str
    at: datetime
    key_version: int
    signature: str
    public_key: str

    def json_line(self) -> str:
        """The checkpoint as one line of JSON, as the auditor's file keeps it."""
        return json.dumps(
            {
                "position": self.position,
                "chain": self.chain,
                "at": rules.encode_time(self.at),
                "key_version": self.key_version,
                "public_key": self.public_key,
                "signature": self.signature,
            },
            separators=(", ", ": "),
        )


def checkpoint(app: App) -> Checkpoint:
    """Seal, then sign the chain's head now with the current `checkpoints` key and store the
    checkpoint in the database."""
    chain = app.chain()
    chain.seal()
    position, head = chain.head()
    # In UTC: what is signed is the time as stored, and SQLite stores a time without its zone.
    at = app.clock().astimezone(UTC)
    signer = app.checkpoint_signer()
    version, signature = signer.sign(rules.checkpoint_message(position, head, at))
    chain.add_checkpoint(position, head, at, version, signature.hex())
    return Checkpoint(
        position, head, at, version, signature.hex(), signer.public_keys()[version].hex()
    )


class Keeper:
    """Keeps the ledger sealed and checkpointed while a server runs, on a thread of its own:
    seals every `seal_every` seconds (quickly, and every `full_every` seconds everything) and
    signs a checkpoint every `checkpoint_every` seconds (none with 0). A failure is logged and
    tried again at the next turn."""

    def __init__(
        self,
        app: App,
        seal_every: float = 5.0,
        full_every: float = 60.0,
        checkpoint_every: float = 600.0,
    ) -> None:
        self.app = app
        self.seal_every = seal_every
        self.full_every = full_every
        self.checkpoint_every = checkpoint_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="puhui-ledger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for its turn to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        signed = sealed = time.monotonic()
        while not self._stop.wait(self.seal_every):
            now = time.monotonic()
            if self.checkpoint_every and now - signed >= self.checkpoint_every:
                try:
                    checkpoint(self.app)  # seals everything first
                except Exception as error:
                    log.warning("the ledger's checkpoint failed (%s)", type(error).__name__)
                signed = sealed = now
            elif now - sealed >= self.full_every:
                seal_quietly(self.app)
                sealed = now
            else:
                seal_quietly(self.app, everything=False)


def public_keys(app: App) -> dict[int, bytes]:
    """The raw Ed25519 public key of each version of the `checkpoints` key, for auditors."""
    return app.checkpoint_signer().public_keys()


def public_key_pem(public: bytes) -> str:
    """A raw Ed25519 public key as PEM (what `openssl pkeyutl -verify -pubin` reads)."""
    return rules.public_key_pem(public)


def _file_mismatches(app: App, lines: Iterable[str]) -> list[str]:
    """The lines of the auditor's file whose checkpoint does not hold, as `line N`."""
    chain = app.chain()
    signer = app.checkpoint_signer()
    broken: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            kept = _parse(line)
            stored = chain.chain_at(kept.position)
            message = rules.checkpoint_message(kept.position, kept.chain, kept.at)
            holds = stored == kept.chain and signer.verify(
                kept.key_version, message, bytes.fromhex(kept.signature)
            )
        except (InputError, ValueError, rules.ChainError):
            holds = False
        if not holds:
            broken.append(f"line {number}")
    return broken


def _parse(line: str) -> Checkpoint:
    """A line of the auditor's file.

    Raises:
        InputError: it is not a checkpoint.
    """
    try:
        data = json.loads(line)
        return Checkpoint(
            int(data["position"]),
            str(data["chain"]),
            datetime.fromisoformat(str(data["at"])),
            int(data["key_version"]),
            str(data["signature"]),
            str(data.get("public_key", "")),
        )
    except (ValueError, TypeError, KeyError) as error:
        raise InputError(f"not a checkpoint: {error}") from None


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """Size of the ledger."""

    accounts: int
    transfers: int
    issued_g: int


def totals(app: App) -> LedgerTotals:
    """Counts and grams issued (credited to citizens), for the verify summary."""
    return LedgerTotals(*app.audit().size())
