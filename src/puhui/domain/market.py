"""The carbon market, stated once: certified units made of citizens' credits, their serial
numbers, the proof that a credit is in a batch, and what a company may do with its units.

**Certification.** For a period (a China month), a methodology version and a region, the
exchange certifies the credited grams of the citizens who take part: they granted the `certify`
scope, or the certification pays a points programme's points and the programme's terms say its
members' credits are certified (then the credits it pays points for). Each taking part
gives, oldest credit first, the whole credits their account still holds (`allocate`): a gram
spent, retired or given away is no longer in the account and is never certified; a credit is
certified once. The grams move into the *pool* of the methodology and
region. The pool then issues a *batch* of whole units (1 unit = `UNIT_G` grams), its oldest
grams first (`fill`: the last credit may be split, its remainder waits for the next batch),
withholding a buffer share (`buffer_units`, rounded up) against credits later reversed.

**Serial numbers.** Every unit has a number, unique over all batches: a batch takes the next
block of numbers and is known by `serial` (`CN-PH-<exchange>-<methodology>-<vintage>-<first>-
<last>`). Units move in blocks of consecutive numbers; moving `n` units from a holding takes its
lowest numbers first and splits a block exactly (`take`): the blocks of all holdings,
retirements, the buffer and cancelled units partition each batch's numbers.

**Proofs.** A batch commits to its credits with a Merkle tree (RFC 9162, section 2.1: SHA-256,
leaves hashed with a 0x00 prefix, nodes with 0x01) over `leaf` of each credit in the order of
the batch; `inclusion_proof` and `verify_inclusion` are the audit path and its check (RFC 9162,
2.1.3), which anyone can run offline against the published root.

**Reversals.** A certified credit later found fraudulent is not taken back from a buyer: its
grams still in the pool go back from the pool; those in a batch are drawn from the batch's
buffer (`draw`), and what the buffer cannot cover is a *shortfall*, shown to the operator and
the regulator. Buffer units no longer backed by grams are cancelled (`buffer_cancelled`).

**Companies** are known by their unified social credit code (`uscc_refused`, GB 32100-2015).
A company holding units may move any number of them to another company or retire them for a
beneficiary and a purpose; a retired unit never moves again.

The standard library (and `domain.china_time`) only: the SQL renderings
(`adapters/sql/market.py`) are held to this.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from puhui.domain import china_time

# One certified unit: a tonne of CO2e, in grams.
UNIT_G = 1_000_000
# The buffer share withheld from each batch unless the operator says otherwise, in basis points.
DEFAULT_BUFFER_BP = 500
# The nine exchanges of the common mechanism, by the code their serial numbers carry.
EXCHANGES: dict[str, str] = {
    "SC": "四川联合环境交易所",
    "GZ": "广州碳排放权交易中心",
    "SH": "上海环境能源交易所",
    "BJ": "北京绿色交易所",
    "TJ": "天津排放权交易所",
    "HB": "湖北碳排放权交易中心",
    "HX": "海峡资源环境交易中心",
    "CQ": "重庆联合产权交易所",
    "SZ": "深圳排放权交易所",
}
# Who holds a block of units.
# `abroad`: in another node's registry (sent there, or not come here yet: docs/federation.md).
HOLDERS = ("exchange", "company", "buffer", "retired", "cancelled", "abroad")

_PERIOD = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_REGION = re.compile(r"[0-9]{2}(?:[0-9]{2}){0,2}")
_SERIAL = re.compile(
    r"CN-PH-(?P<exchange>[A-Z]{2})-(?P<methodology>[A-Z0-9][A-Z0-9.\-]*)-"
    r"(?P<vintage>[0-9]{4}-[0-9]{2})-(?P<first>[1-9][0-9]{0,14})-(?P<last>[1-9][0-9]{0,14})"
)


# --- companies --------------------------------------------------------------------------------

# GB 32100-2015: 18 characters of this alphabet (no I, O, S, V, Z); the last is a check.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check(first17: str) -> str:
    """The check character of a unified social credit code's first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_refused(code: str) -> str | None:
    """Why a text is not a unified social credit code (None when it is one)."""
    if len(code) != 18:
        return "a unified social credit code has 18 characters"
    bad = sorted({c for c in code if c not in USCC_ALPHABET})
    if bad:
        return (
            "a unified social credit code has digits and capital letters other than I, O, S, "
            "V and Z"
        )
    if uscc_check(code[:17]) != code[17]:
        return "the unified social credit code's check character does not match"
    return None


# --- certification ----------------------------------------------------------------------------


def period_refused(period: str) -> str | None:
    """Why a period is not a month `YYYY-MM` of 2000 to 2999 (None when it is)."""
    found = _PERIOD.fullmatch(period)
    if found is None or not 2000 <= int(found[1]) <= 2999:
        return "a period is a month from 2000-01 to 2999-12: YYYY-MM"
    return None


def period_ms(period: str) -> tuple[int, int]:
    """The instants (epoch ms) a month `YYYY-MM` starts and ends, China time."""
    year, month = (int(p) for p in period.split("-"))
    start = china_time.day_start_ms(date(year, month, 1))
    return start, china_time.next_month_ms(start)


def period_over(period: str, at: datetime) -> bool:
    """Whether a month (`YYYY-MM`, China time) has ended at `at`: only then are its credits
    all in."""
    return at.timestamp() * 1000 >= period_ms(period)[1]


def region_refused(region: str) -> str | None:
    """Why a region is not a GB/T 2260 prefix of 2, 4 or 6 digits (None when it is)."""
    return None if _REGION.fullmatch(region) else "a region is a code of 2, 4 or 6 digits"


@dataclass(frozen=True, slots=True)
class Certification:
    """What the operator certifies: a month (`YYYY-MM`, China time, by the behaviour's start), a
    methodology version (`id@version`) and a region (a GB/T 2260 prefix), the exchange whose
    serial numbers the batch takes, its buffer share (basis points), and the programme whose
    points the citizens get for the grams they give (none: no points)."""

    period: str
    methodology: str
    region: str
    exchange: str
    buffer_bp: int = DEFAULT_BUFFER_BP
    programme: str | None = None

    def refused(self) -> str | None:
        """Why it cannot be certified as asked (None when it can)."""
        if self.exchange not in EXCHANGES:
            return f"an exchange is one of {', '.join(EXCHANGES)}"
        if not 0 <= self.buffer_bp < 10_000:
            return "a buffer share is 0 to 9 999 basis points"
        if "@" not in self.methodology:
            return "a methodology is named with its version: id@version"
        return period_refused(self.period) or region_refused(self.region)


@dataclass(frozen=True, slots=True)
class Credit:
    """A credit that may be certified: its record, its citizen and its grams."""

    seq: int
    citizen: int
    grams: int


def allocate(credits: Iterable[Credit], balances: dict[int, int]) -> list[Credit]:
    """The credits certified: for each citizen, their credits oldest first (by `seq`), whole,
    while their account (`balances`) still holds them all. A credit that does not fit in what
    is left is not certified (nor are the later ones of that citizen: the oldest go first)."""
    left = dict(balances)
    full: set[int] = set()
    taken = []
    for credit in sorted(credits, key=lambda c: c.seq):
        if credit.citizen in full:
            continue
        if credit.grams <= left.get(credit.citizen, 0):
            left[credit.citizen] -= credit.grams
            taken.append(credit)
        else:
            full.add(credit.citizen)
    return taken


def units_of(grams: int) -> int:
    """The whole units a pool of grams makes."""
    return grams // UNIT_G


def buffer_units(units: int, buffer_bp: int) -> int:
    """The units of a batch withheld in its buffer: the share, rounded up."""
    return min(units, -(-units * buffer_bp // 10_000))


def fill(pool: Sequence[tuple[int, int]], grams: int) -> list[tuple[int, int]]:
    """What a batch of `grams` takes from a pool of `(seq, grams left)`, oldest first: whole
    credits, and the last one in part when it does not fit."""
    taken = []
    for seq, left in sorted(pool):
        if grams <= 0:
            break
        part = min(left, grams)
        if part > 0:
            taken.append((seq, part))
            grams -= part
    if grams > 0:
        raise ValueError("the pool holds less than the batch")
    return taken


def draw(buffer_g: int, grams: int) -> tuple[int, int]:
    """What a reversal of `grams` of a batch draws from its buffer holding `buffer_g`, and the
    shortfall the buffer cannot cover."""
    drawn = min(buffer_g, grams)
    return drawn, grams - drawn


def buffer_cancelled(buffer_units_held: int, buffer_g: int) -> int:
    """Buffer units to cancel once the buffer holds `buffer_g`: those no longer backed by a
    whole unit's grams."""
    return max(0, buffer_units_held - buffer_g // UNIT_G)


# --- serial numbers ---------------------------------------------------------------------------


def methodology_token(methodology: str) -> str:
    """A methodology version as a serial number carries it: `cn-public-transit@1.2.0` is
    `CN-PUBLIC-TRANSIT.V1.2.0`."""
    code, _, version = methodology.partition("@")
    return code.upper() + (f".V{version}" if version else "")


def serial(exchange: str, methodology: str, vintage: str, first: int, last: int) -> str:
    """The serial of a block of units: `CN-PH-<exchange>-<methodology>-<vintage>-<first>-<last>`."""
    return f"CN-PH-{exchange}-{methodology_token(methodology)}-{vintage}-{first}-{last}"


@dataclass(frozen=True, slots=True)
class Serial:
    """A serial number read back."""

    exchange: str
    methodology: str
    vintage: str
    first: int
    last: int


def parse_serial(text: str) -> Serial:
    """Read a serial number.

    Raises:
        ValueError: not a serial number, or its range is backwards.
    """
    found = _SERIAL.fullmatch(text)
    if found is None:
        raise ValueError(
            "not a serial number: CN-PH-<exchange>-<methodology>-<vintage>-<first>-<last>"
        )
    first, last = int(found["first"]), int(found["last"])
    if last < first:
        raise ValueError("a serial number's range ends before it starts")
    return Serial(found["exchange"], found["methodology"], found["vintage"], first, last)


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive unit numbers `first`..`last` (both included) of one batch."""

    batch: int
    first: int
    last: int

    @property
    def units(self) -> int:
        return self.last - self.first + 1


def take(blocks: Iterable[Block], units: int) -> tuple[list[Block], list[Block]]:
    """Move `units` out of a holding: its lowest numbers first (oldest batch first, since
    numbers grow with batches). Returns the blocks taken and the blocks left, a block split
    exactly where the count ends.

    Raises:
        ValueError: not a positive number of units, or more than the holding has.
    """
    if units <= 0:
        raise ValueError("a number of units is positive")
    taken: list[Block] = []
    left: list[Block] = []
    need = units
    for block in sorted(blocks, key=lambda b: (b.first, b.batch)):
        if need == 0:
            left.append(block)
        elif block.units <= need:
            taken.append(block)
            need -= block.units
        else:
            taken.append(Block(block.batch, block.first, block.first + need - 1))
            left.append(Block(block.batch, block.first + need, block.last))
            need = 0
    if need:
        raise ValueError(f"the holding has {units - need} units, fewer than {units}")
    return taken, left


def take_highest(blocks: Iterable[Block], units: int) -> tuple[list[Block], list[Block]]:
    """Like `take`, from the highest numbers (what a buffer cancels: its last units)."""
    mirrored = [Block(b.batch, -b.last, -b.first) for b in blocks]
    taken, left = take(mirrored, units)
    return (
        [Block(b.batch, -b.last, -b.first) for b in taken],
        [Block(b.batch, -b.last, -b.first) for b in left],
    )


def take_range(
    blocks: Iterable[Block], batch: int, first: int, last: int
) -> tuple[list[Block], list[Block]]:
    """Move the units `first`..`last` of one batch out of a holding (units named by number: what
    a registry of another node sends back or on). Returns the blocks taken and the blocks left,
    a block split where the range starts and ends.

    Raises:
        ValueError: the holding does not have every unit of the range.
    """
    if last < first:
        raise ValueError("a range of units ends after it starts")
    taken: list[Block] = []
    left: list[Block] = []
    for block in sorted(blocks, key=lambda b: (b.batch, b.first)):
        if block.batch != batch or block.last < first or block.first > last:
            left.append(block)
            continue
        lo, hi = max(block.first, first), min(block.last, last)
        taken.append(Block(batch, lo, hi))
        if block.first < lo:
            left.append(Block(batch, block.first, lo - 1))
        if hi < block.last:
            left.append(Block(batch, hi + 1, block.last))
    if sum(b.units for b in taken) != last - first + 1:
        raise ValueError(f"the holding does not have every unit of {first} to {last}")
    return taken, left


def merged(blocks: Iterable[Block]) -> list[Block]:
    """Blocks with adjacent ranges of one batch joined: how a holding is shown."""
    out: list[Block] = []
    for block in sorted(blocks, key=lambda b: (b.batch, b.first)):
        if out and out[-1].batch == block.batch and out[-1].last + 1 == block.first:
            out[-1] = Block(block.batch, out[-1].first, block.last)
        else:
            out.append(block)
    return out


def partitions(first: int, last: int, blocks: Iterable[Block]) -> bool:
    """Whether blocks cover `first`..`last` exactly once: no gap, no overlap, nothing outside."""
    at = first
    for block in sorted(blocks, key=lambda b: b.first):
        if block.first != at or block.last < block.first:
            return False
        at = block.last + 1
    return at == last + 1


# --- proofs -----------------------------------------------------------------------------------


def leaf(platform: str, record_id: str, grams: int) -> bytes:
    """A credit of a batch as its Merkle leaf commits to it: the receipt (platform, record id)
    and the grams of the credit in this batch, as JSON with the keys sorted, no spaces and
    UTF-8 text (for this object, the JSON canonicalization scheme of RFC 8785)."""
    return json.dumps(
        {"grams": grams, "platform": platform, "record_id": record_id},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162: SHA-256(0x00 ‖ leaf)."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of leaf hashes (RFC 9162, 2.1.1); of none, SHA-256 of nothing."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    # Bottom-up: pairs from the left, an odd last node carried up as it is, gives the same
    # tree as the recursive split at the largest power of two.
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` (RFC 9162, 2.1.3.1), from the leaf up."""
    if not 0 <= index < len(hashes):
        raise ValueError("no such leaf")
    path: list[bytes] = []
    level, at = list(hashes), index
    while len(level) > 1:
        sibling = at ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, at = nxt, at // 2
    return path


# A batch keeps the roots of its leaves' consecutive runs of this many (a power of two): the
# tree's nodes at that height, from which a proof reads one run and the roots, not every leaf.
CHUNK = 1024


def chunk_roots(hashes: Sequence[bytes]) -> list[bytes]:
    """The roots of the runs of `CHUNK` leaf hashes (the last run may be shorter): the tree's
    nodes `log2(CHUNK)` levels above its leaves, whose own tree has the same root."""
    return [merkle_root(hashes[i : i + CHUNK]) for i in range(0, len(hashes), CHUNK)]


def chunked_proof(run: Sequence[bytes], roots: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` from its run of leaf hashes (the run `index // CHUNK`)
    and the runs' roots: its path within the run, then its run's path among the roots. It is
    `inclusion_proof` of the whole tree: pairs never cross a run, since a full run has an even
    number of nodes at every height below its root."""
    return [*inclusion_proof(run, index % CHUNK), *inclusion_proof(roots, index // CHUNK)]


def verify_inclusion(
    hashed: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether an audit path proves leaf hash `hashed` at `index` of a tree of `size` leaves
    with `root` (RFC 9162, 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, hashed
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
