"""The carbon market's rules (`domain.market`), on worked cases and as properties: company
codes, certification, buffers, serial numbers and blocks of units, and the Merkle proofs of a
batch held to a plain recursive reading of RFC 9162."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from puhui.domain import market as rules
from puhui.domain.market import Block, Certification, Credit

VALID_USCC = "91350100M000100Y43"


# --- companies --------------------------------------------------------------------------------


def test_a_known_unified_social_credit_code_is_accepted() -> None:
    assert rules.uscc_refused(VALID_USCC) is None
    assert rules.uscc_check(VALID_USCC[:17]) == "3"


@pytest.mark.parametrize("at", range(18))
def test_every_single_character_change_of_a_code_is_refused(at: int) -> None:
    """The check character catches any one character changed, and letters outside the
    alphabet (I, O, S, V, Z, lower case, other scripts) are refused outright."""
    others = set(rules.USCC_ALPHABET + "IOSVZabc-. 统") - {VALID_USCC[at]}
    for c in sorted(others):
        changed = VALID_USCC[:at] + c + VALID_USCC[at + 1 :]
        assert rules.uscc_refused(changed) is not None, changed


def test_a_code_of_another_length_is_refused() -> None:
    assert rules.uscc_refused(VALID_USCC[:17]) == "a unified social credit code has 18 characters"
    assert rules.uscc_refused(VALID_USCC + "0") is not None
    assert rules.uscc_refused("") is not None
    assert "I, O, S" in str(rules.uscc_refused("91350100M000100Y4I"))
    assert "check character" in str(rules.uscc_refused("91350100M000100Y44"))


@given(st.text(rules.USCC_ALPHABET, min_size=17, max_size=17))
def test_the_check_character_completes_any_17_characters_into_a_code(first17: str) -> None:
    code = first17 + rules.uscc_check(first17)
    assert rules.uscc_refused(code) is None
    for c in rules.USCC_ALPHABET:
        if c != code[17]:
            assert rules.uscc_refused(first17 + c) is not None


# --- certification ----------------------------------------------------------------------------


def test_what_may_be_certified() -> None:
    fine = Certification("2026-10", "cn-common@1.0.0", "51", "SC")
    assert fine.refused() is None
    assert fine.buffer_bp == rules.DEFAULT_BUFFER_BP == 500
    assert Certification("2026-10", "cn-common@1.0.0", "51", "XX").refused() is not None
    assert Certification("2026-10", "cn-common", "51", "SC").refused() is not None
    assert Certification("2026-13", "cn-common@1.0.0", "51", "SC").refused() is not None
    assert Certification("2026-1", "cn-common@1.0.0", "51", "SC").refused() is not None
    assert Certification("2026-10", "cn-common@1.0.0", "5", "SC").refused() is not None
    assert Certification("2026-10", "cn-common@1.0.0", "5101001", "SC").refused() is not None
    assert Certification("2026-10", "cn-common@1.0.0", "510100", "SC", 0).refused() is None
    assert Certification("2026-10", "cn-common@1.0.0", "51", "SC", 9_999).refused() is None
    assert Certification("2026-10", "cn-common@1.0.0", "51", "SC", 10_000).refused() is not None
    assert Certification("2026-10", "cn-common@1.0.0", "51", "SC", -1).refused() is not None


def test_allocate_takes_each_citizens_oldest_whole_credits_that_fit() -> None:
    credits = [
        Credit(1, 7, 300),
        Credit(2, 8, 50),
        Credit(3, 7, 500),
        Credit(4, 7, 100),  # fits what is left, but an older credit did not: not taken
        Credit(5, 8, 50),
        Credit(6, 9, 10),  # no account: nothing to take from
    ]
    taken = rules.allocate(reversed(credits), {7: 700, 8: 100})
    assert taken == [Credit(1, 7, 300), Credit(2, 8, 50), Credit(5, 8, 50)]
    assert rules.allocate([], {7: 1}) == []


CREDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 1_000)), min_size=0, max_size=30
).map(lambda cs: [Credit(seq, citizen, grams) for seq, (citizen, grams) in enumerate(cs)])
BALANCES = st.dictionaries(st.integers(0, 3), st.integers(0, 5_000))


@given(CREDITS, BALANCES, st.randoms(use_true_random=False))
def test_allocate_never_exceeds_a_balance_and_takes_the_oldest_first(
    credits: list[Credit], balances: dict[int, int], rnd: random.Random
) -> None:
    shuffled = list(credits)
    rnd.shuffle(shuffled)
    taken = rules.allocate(shuffled, balances)
    assert taken == sorted(taken, key=lambda c: c.seq)
    assert len({c.seq for c in taken}) == len(taken)
    for citizen in {c.citizen for c in credits}:
        own = sorted((c for c in credits if c.citizen == citizen), key=lambda c: c.seq)
        mine = [c for c in taken if c.citizen == citizen]
        # A prefix of the citizen's credits, oldest first...
        assert mine == own[: len(mine)]
        # ...within the balance, and the next one would not have fitted.
        balance = balances.get(citizen, 0)
        assert sum(c.grams for c in mine) <= balance
        if len(mine) < len(own):
            assert sum(c.grams for c in mine) + own[len(mine)].grams > balance


def test_units_and_the_buffer_withheld() -> None:
    assert rules.units_of(999_999) == 0
    assert rules.units_of(1_000_000) == 1
    assert rules.units_of(5_040_000) == 5
    # Rounded up: one unit in 5 % is a whole unit, and so is 20 units' 1.
    assert rules.buffer_units(1, 500) == 1
    assert rules.buffer_units(20, 500) == 1
    assert rules.buffer_units(21, 500) == 2
    assert rules.buffer_units(0, 500) == 0
    assert rules.buffer_units(10, 0) == 0
    assert rules.buffer_units(3, 9_999) == 3
    assert rules.buffer_units(100, 2_500) == 25


@given(st.integers(0, 10**6), st.integers(0, 9_999))
def test_the_buffer_is_the_share_rounded_up(units: int, bp: int) -> None:
    withheld = rules.buffer_units(units, bp)
    assert 0 <= withheld <= units
    assert withheld * 10_000 >= units * bp
    assert withheld == 0 or (withheld - 1) * 10_000 < units * bp


def test_fill_takes_whole_credits_oldest_first_and_splits_the_last() -> None:
    pool = [(9, 400_000), (3, 500_000), (5, 0), (7, 300_000)]
    assert rules.fill(pool, 1_000_000) == [(3, 500_000), (7, 300_000), (9, 200_000)]
    assert rules.fill(pool, 800_000) == [(3, 500_000), (7, 300_000)]
    with pytest.raises(ValueError, match="less than the batch"):
        rules.fill(pool, 1_200_001)


@given(
    st.lists(st.integers(0, 600_000), max_size=25).map(
        lambda gs: [(seq * 3 + 1, g) for seq, g in enumerate(gs)]
    ),
    st.integers(1, 3_000_000),
    st.randoms(use_true_random=False),
)
def test_fill_splits_at_most_one_credit(
    pool: list[tuple[int, int]], grams: int, rnd: random.Random
) -> None:
    shuffled = list(pool)
    rnd.shuffle(shuffled)
    if grams > sum(g for _, g in pool):
        with pytest.raises(ValueError, match="less than the batch"):
            rules.fill(shuffled, grams)
        return
    taken = rules.fill(shuffled, grams)
    assert sum(g for _, g in taken) == grams
    left = dict(pool)
    # Oldest first, each credit at most once, nothing of an empty one...
    assert [s for s, _ in taken] == [s for s, g in sorted(pool) if g > 0][: len(taken)]
    assert all(0 < g <= left[s] for s, g in taken)
    # ...whole, but the last.
    assert all(g == left[s] for s, g in taken[:-1])


def test_a_reversal_draws_what_the_buffer_holds_and_cancels_unbacked_units() -> None:
    assert rules.draw(1_000_000, 20_000) == (20_000, 0)
    assert rules.draw(15_000, 20_000) == (15_000, 5_000)
    assert rules.draw(0, 20_000) == (0, 20_000)
    # A buffer of 2 units holding less than 2 units' grams keeps only what is whole.
    assert rules.buffer_cancelled(2, 2_000_000) == 0
    assert rules.buffer_cancelled(2, 1_999_999) == 1
    assert rules.buffer_cancelled(2, 999_999) == 2
    assert rules.buffer_cancelled(1, 5_000_000) == 0
    assert rules.buffer_cancelled(0, 0) == 0


@given(st.integers(0, 10**7), st.integers(1, 10**6))
def test_a_draw_is_what_the_buffer_covers_and_its_shortfall(buffer_g: int, grams: int) -> None:
    drawn, short = rules.draw(buffer_g, grams)
    assert drawn + short == grams
    assert 0 <= drawn <= buffer_g
    assert short == 0 or drawn == buffer_g


# --- serial numbers ---------------------------------------------------------------------------


def test_a_serial_number_as_written_and_read() -> None:
    assert rules.methodology_token("cn-public-transit@1.2.0") == "CN-PUBLIC-TRANSIT.V1.2.0"
    text = rules.serial("SC", "cn-public-transit@1.2.0", "2026-10", 1, 5)
    assert text == "CN-PH-SC-CN-PUBLIC-TRANSIT.V1.2.0-2026-10-1-5"
    assert rules.parse_serial(text) == rules.Serial(
        "SC", "CN-PUBLIC-TRANSIT.V1.2.0", "2026-10", 1, 5
    )
    for wrong in (
        "CN-PH-SC-CN-COMMON.V1.0.0-2026-10-5-1",  # backwards
        "CN-PH-SC-CN-COMMON.V1.0.0-2026-10-0-1",  # numbers start at 1
        "CN-PH-sc-CN-COMMON.V1.0.0-2026-10-1-1",
        "CN-PH-SC-CN-COMMON.V1.0.0-2026-1-1-1",
        "CN-PH-SC-CN-COMMON.V1.0.0-2026-10-1",
        "CN-PH-SC-2026-10-1-1",
        " CN-PH-SC-CN-COMMON.V1.0.0-2026-10-1-1",
    ):
        with pytest.raises(ValueError, match="serial number"):
            rules.parse_serial(wrong)


METHODOLOGY = st.builds(
    lambda code, version: f"{code}@{version}",
    st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,3}", fullmatch=True),
    st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
)


@given(
    st.sampled_from(sorted(rules.EXCHANGES)),
    METHODOLOGY,
    st.integers(2000, 2099),
    st.integers(1, 12),
    st.integers(1, 10**12),
    st.integers(0, 10**6),
)
def test_a_serial_number_reads_back_as_written(
    exchange: str, methodology: str, year: int, month: int, first: int, more: int
) -> None:
    vintage = f"{year}-{month:02d}"
    text = rules.serial(exchange, methodology, vintage, first, first + more)
    assert rules.parse_serial(text) == rules.Serial(
        exchange, rules.methodology_token(methodology), vintage, first, first + more
    )


# Blocks: batches of consecutive numbers, each cut into blocks; a holding is some of them.
@st.composite
def holdings(draw: st.DrawFn) -> tuple[list[Block], list[Block]]:
    """Every block of some batches (their numbers consecutive from 1), and a holding: some of
    them, in any order."""
    every: list[Block] = []
    at = 1
    for batch in range(1, draw(st.integers(1, 4)) + 1):
        size = draw(st.integers(1, 12))
        cuts = sorted(
            draw(st.sets(st.integers(1, size - 1), max_size=size - 1)) if size > 1 else []
        )
        edges = [0, *cuts, size]
        every += [Block(batch, at + a, at + b - 1) for a, b in itertools.pairwise(edges)]
        at += size
    held = draw(st.lists(st.sampled_from(every), unique=True, min_size=1))
    return every, draw(st.permutations(held))


def numbers(blocks: Sequence[Block]) -> list[int]:
    return sorted(n for b in blocks for n in range(b.first, b.last + 1))


def test_take_splits_a_block_exactly_where_the_count_ends() -> None:
    held = [Block(2, 11, 15), Block(1, 1, 3), Block(1, 6, 7)]
    assert rules.take(held, 4) == (
        [Block(1, 1, 3), Block(1, 6, 6)],
        [Block(1, 7, 7), Block(2, 11, 15)],
    )
    assert rules.take(held, 5) == ([Block(1, 1, 3), Block(1, 6, 7)], [Block(2, 11, 15)])
    taken, left = rules.take_highest(held, 2)
    assert taken == [Block(2, 14, 15)]
    assert sorted(left, key=lambda b: b.first) == [Block(1, 1, 3), Block(1, 6, 7), Block(2, 11, 13)]
    with pytest.raises(ValueError, match="fewer than 11"):
        rules.take(held, 11)
    with pytest.raises(ValueError, match="positive"):
        rules.take(held, 0)


@given(holdings(), st.data())
def test_take_conserves_units_takes_the_lowest_and_splits_one_block_at_most(
    drawn: tuple[list[Block], list[Block]], data: st.DataObject
) -> None:
    every, held = drawn
    total = sum(b.units for b in held)
    units = data.draw(st.integers(1, total))
    taken, left = rules.take(held, units)
    assert sum(b.units for b in taken) == units
    assert numbers(taken) == numbers(held)[:units]
    assert numbers(left) == numbers(held)[units:]
    # Every block is one of the holding's, but for one cut in two where the count ends.
    new = set(taken + left) - set(held)
    assert len(new) in (0, 2)
    if new:
        low, high = sorted(new, key=lambda b: b.first)
        assert low.batch == high.batch
        assert low.last + 1 == high.first
        assert Block(low.batch, low.first, high.last) in held
        assert low in taken
        assert high in left
    # The blocks of all holdings still partition each batch.
    rest = [b for b in every if b not in held]
    for batch in {b.batch for b in every}:
        own = [b for b in every if b.batch == batch]
        first, last = min(b.first for b in own), max(b.last for b in own)
        assert rules.partitions(first, last, [b for b in taken + left + rest if b.batch == batch])
    with pytest.raises(ValueError, match="fewer than"):
        rules.take(held, total + 1)


@given(holdings(), st.data())
def test_take_highest_takes_the_highest_numbers(
    drawn: tuple[list[Block], list[Block]], data: st.DataObject
) -> None:
    _, held = drawn
    units = data.draw(st.integers(1, sum(b.units for b in held)))
    taken, left = rules.take_highest(held, units)
    assert numbers(taken) == numbers(held)[-units:]
    assert numbers(left) == numbers(held)[:-units]
    assert all(b.first <= b.last for b in taken + left)


@given(holdings())
def test_merged_joins_adjacent_blocks_of_a_batch(drawn: tuple[list[Block], list[Block]]) -> None:
    _, held = drawn
    shown = rules.merged(held)
    assert numbers(shown) == numbers(held)
    for a, b in itertools.pairwise(shown):
        assert a.last < b.first
        assert not (a.batch == b.batch and a.last + 1 == b.first)


def test_partitions_means_no_gap_no_overlap_nothing_outside() -> None:
    assert rules.partitions(1, 5, [Block(1, 4, 5), Block(1, 1, 3)])
    assert not rules.partitions(1, 5, [Block(1, 1, 2), Block(1, 4, 5)])  # a gap
    assert not rules.partitions(1, 5, [Block(1, 1, 3), Block(1, 3, 5)])  # an overlap
    assert not rules.partitions(1, 5, [Block(1, 1, 6)])  # outside
    assert not rules.partitions(2, 5, [Block(1, 1, 5)])
    assert not rules.partitions(1, 5, [Block(1, 1, 5), Block(1, 4, 3)])
    assert not rules.partitions(1, 5, [])


# --- proofs -----------------------------------------------------------------------------------


def test_a_leaf_is_canonical_json_of_the_receipt_and_grams() -> None:
    assert rules.leaf("amap", "r1", 20_000) == (
        b'{"grams":20000,"platform":"amap","record_id":"r1"}'
    )
    assert (
        rules.leaf("amap", "单-1", 5) == '{"grams":5,"platform":"amap","record_id":"单-1"}'.encode()
    )
    assert rules.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()


# A plain reading of RFC 9162, 2.1.1 and 2.1.3.1, on the leaves' data.
def mth(data: Sequence[bytes]) -> bytes:
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def path(m: int, data: Sequence[bytes]) -> list[bytes]:
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def flipped(value: bytes) -> bytes:
    return bytes([value[0] ^ 1]) + value[1:]


def test_the_root_of_no_leaves_and_of_one() -> None:
    assert rules.merkle_root([]) == hashlib.sha256(b"").digest()
    assert rules.merkle_root([rules.leaf_hash(b"a")]) == rules.leaf_hash(b"a")
    assert rules.inclusion_proof([rules.leaf_hash(b"a")], 0) == []
    with pytest.raises(ValueError, match="no such leaf"):
        rules.inclusion_proof([rules.leaf_hash(b"a")], 1)


@pytest.mark.parametrize("size", range(1, 71))
def test_every_leaf_of_a_tree_verifies_and_nothing_altered_does(size: int) -> None:
    data = [rules.leaf("amap", f"r{i}", 1_000 + i) for i in range(size)]
    hashes = [rules.leaf_hash(d) for d in data]
    root = rules.merkle_root(hashes)
    assert root == mth(data)
    other = flipped(root)
    for index in range(size):
        proof = rules.inclusion_proof(hashes, index)
        assert proof == path(index, data)
        hashed = hashes[index]
        assert rules.verify_inclusion(hashed, index, size, proof, root)
        # An altered leaf (another credit's too), index, path element or root fails.
        assert not rules.verify_inclusion(flipped(hashed), index, size, proof, root)
        assert not rules.verify_inclusion(
            rules.leaf_hash(rules.leaf("amap", f"r{index}", 1_001 + index)),
            index,
            size,
            proof,
            root,
        )
        for wrong in {index - 1, index + 1, index ^ 1, size, -1, size - 1 - index} - {index}:
            assert not rules.verify_inclusion(hashed, wrong, size, proof, root), wrong
        for at in range(len(proof)):
            altered = [*proof[:at], flipped(proof[at]), *proof[at + 1 :]]
            assert not rules.verify_inclusion(hashed, index, size, altered, root)
        assert not rules.verify_inclusion(hashed, index, size, proof, other)
        # A path cut short or made longer fails too.
        if proof:
            assert not rules.verify_inclusion(hashed, index, size, proof[:-1], root)
        assert not rules.verify_inclusion(hashed, index, size, [*proof, root], root)


def test_a_leaf_of_another_tree_does_not_verify() -> None:
    data = [rules.leaf("amap", f"r{i}", 7) for i in range(5)]
    hashes = [rules.leaf_hash(d) for d in data]
    root = rules.merkle_root(hashes)
    proof = rules.inclusion_proof(hashes, 2)
    assert rules.verify_inclusion(hashes[2], 2, 5, proof, root)
    assert not rules.verify_inclusion(hashes[3], 2, 5, proof, root)
    assert not rules.verify_inclusion(rules.leaf_hash(b""), 2, 5, proof, root)


def test_moves_of_units_partition_a_batch_however_it_is_cut() -> None:
    """A batch sold, transferred and retired in parts, as the market moves them: its blocks
    always partition its numbers and each holder's count is what was moved there."""
    batch = Block(1, 101, 120)
    held: dict[str, list[Block]] = defaultdict(list)
    held["exchange"] = [Block(1, 101, 119)]
    held["buffer"] = [Block(1, 120, 120)]
    for source, to, units in (
        ("exchange", "a", 7),
        ("exchange", "b", 5),
        ("a", "b", 3),
        ("b", "retired", 6),
        ("a", "retired", 4),
    ):
        taken, left = rules.take(held[source], units)
        held[source] = left
        held[to] += taken
        every = [b for blocks in held.values() for b in blocks]
        assert rules.partitions(batch.first, batch.last, every)
    assert {k: sum(b.units for b in v) for k, v in held.items()} == {
        "exchange": 7,
        "buffer": 1,
        "a": 0,
        "b": 2,
        "retired": 10,
    }
    assert rules.merged(held["retired"]) == [Block(1, 101, 110)]


@pytest.mark.parametrize("size", [1, 2, 1023, 1024, 1025, 2048, 2049, 3000])
def test_a_proof_from_runs_of_leaves_is_the_proof_of_the_whole_tree(size: int) -> None:
    """A batch keeps the roots of its runs of `CHUNK` leaves; the tree of those roots has the
    batch's root, and a leaf's path within its run followed by its run's path among the roots
    is its audit path in the whole tree."""
    hashes = [rules.leaf_hash(rules.leaf("p", str(i), i + 1)) for i in range(size)]
    roots = rules.chunk_roots(hashes)
    assert rules.merkle_root(roots) == rules.merkle_root(hashes)
    for index in sorted({0, size // 2, size - 1, min(size - 1, rules.CHUNK), size - 2} - {-1}):
        run = index // rules.CHUNK
        mine = hashes[run * rules.CHUNK : (run + 1) * rules.CHUNK]
        assert rules.chunked_proof(mine, roots, index) == rules.inclusion_proof(hashes, index)
