"""How the ledger proves itself, as worked examples: the line of a transfer, the digest of a
commit, the chain over commits and what a checkpoint signs (`domain.chain`, docs/ledger.md)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from puhui.adapters import checkpoint_keys
from puhui.domain import chain as rules
from puhui.service import ledger

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC)
# A credit of 29 g: transfer 1 from issuance account 2 to citizen account 3, record 1 of
# batch 1, written by commit 1.
CREDIT = (1, "credit", 2, 3, 29, 1, 1, None, None, None, NOV_1, None, 1)
CREDIT_LINE = b"1\tcredit\t2\t3\t29\t1\t1\t\\N\t\\N\t\\N\t2026-11-01T00:00:00.000000Z\t\\N\t1\n"
# The digest of the commit of that one credit, and the chain at position 1 that seals it.
CREDIT_DIGEST = "0198dcfd212c98b383aee494c8e9fc9c6c5d54eb25726f9fc77a99b99aa51d79"
CREDIT_CHAIN = "26c7e2a9017ddd29f8b337a046497f11bb0702d44e5808815ee4ef6061357efb"


def test_a_transfer_is_one_tab_separated_line_of_every_column() -> None:
    assert rules.transfer_line(CREDIT) == CREDIT_LINE


def test_times_are_written_in_utc_with_microseconds_whatever_their_zone() -> None:
    china = timezone(timedelta(hours=8))
    assert rules.encode_time(datetime(2026, 11, 1, 8, 0, 0, 5, tzinfo=china)) == (
        "2026-11-01T00:00:00.000005Z"
    )
    # SQLite gives back the UTC time it stored, without a zone.
    assert rules.encode_time(datetime(2026, 11, 1)) == "2026-11-01T00:00:00.000000Z"


def test_text_is_escaped_as_postgresql_copy_writes_it() -> None:
    assert rules.encode_value("a\\b\tc\nd\re") == "a\\\\b\\tc\\nd\\re"
    assert rules.encode_value(None) == "\\N"


def test_a_value_the_encoding_does_not_know_is_refused() -> None:
    with pytest.raises(rules.ChainError, match="float"):
        rules.encode_value(1.5)  # type: ignore[arg-type]
    with pytest.raises(rules.ChainError, match="boolean"):
        rules.encode_value(True)
    with pytest.raises(rules.ChainError, match="13 columns"):
        rules.transfer_line(CREDIT[:-1])


def test_a_commits_digest_is_sha256_of_its_lines_in_id_order() -> None:
    gift = (2, "transfer", 3, 4, 10, None, None, None, 7, None, NOV_1, None, 1)
    both = rules.commit_digest([CREDIT, gift])
    assert both == hashlib.sha256(CREDIT_LINE + rules.transfer_line(gift)).digest()
    assert both != rules.commit_digest([gift, CREDIT])
    assert rules.commit_digest([CREDIT]).hex() == CREDIT_DIGEST
    assert rules.commit_digest([]) == hashlib.sha256(b"").digest()


def test_every_column_counts_in_the_digest() -> None:
    for i in range(len(CREDIT)):
        changed = list(CREDIT)
        changed[i] = 1029 if isinstance(CREDIT[i], int) or CREDIT[i] is None else changed[i]
        if i == 1:
            changed[i] = "redeem"
        if i == 10:
            changed[i] = NOV_1 + timedelta(microseconds=1)
        assert rules.commit_digest([tuple(changed)]) != rules.commit_digest([CREDIT]), i


def test_digests_read_in_one_pass_are_each_commits_digest() -> None:
    second = (*CREDIT[:-1], 2)
    digests = rules.Digests()
    for row in (CREDIT, second):
        digests.add(int(row[-1]), row)  # type: ignore[call-overload]
    assert digests.done() == {
        1: rules.commit_digest([CREDIT]),
        2: rules.commit_digest([second]),
    }


def test_the_chain_links_the_previous_chain_the_position_the_commit_and_its_digest() -> None:
    digest = bytes.fromhex(CREDIT_DIGEST)
    first = rules.link(rules.GENESIS, 1, 1, digest)
    expected = hashlib.sha256(
        bytes(32) + (1).to_bytes(8, "big") + (1).to_bytes(8, "big") + digest
    ).digest()
    assert first == expected
    assert first.hex() == CREDIT_CHAIN
    second = rules.link(first, 2, 5, digest)
    assert (
        second
        == hashlib.sha256(first + (2).to_bytes(8, "big") + (5).to_bytes(8, "big") + digest).digest()
    )


def _links(n: int) -> list[rules.Link]:
    links, previous = [], rules.GENESIS
    for position in range(1, n + 1):
        digest = hashlib.sha256(str(position).encode()).digest()
        previous = rules.link(previous, position, position * 10, digest)
        links.append(rules.Link(position, position * 10, digest.hex(), previous.hex()))
    return links


def test_a_chain_that_recomputes_has_no_broken_link() -> None:
    assert rules.broken_links(_links(4)) == []
    assert rules.broken_links([]) == []


def test_an_edited_digest_or_chain_names_its_position_and_an_edited_chain_the_next() -> None:
    links = _links(4)
    edited = [*links[:1], rules.Link(2, 20, "00" * 32, links[1].chain), *links[2:]]
    assert rules.broken_links(edited) == [2]
    edited = [*links[:1], rules.Link(2, 20, links[1].digest, "00" * 32), *links[2:]]
    assert rules.broken_links(edited) == [2, 3]


def test_swapped_or_missing_positions_break_the_chain() -> None:
    a, b, c, d = _links(4)
    swapped = [a, rules.Link(2, c.commit_id, c.digest, c.chain), rules.Link(3, *_rest(b)), d]
    assert rules.broken_links(swapped) == [2, 3, 4]
    assert rules.broken_links([a, c, d]) == [3]
    assert rules.broken_links([b, c, d]) == [2]


def _rest(link: rules.Link) -> tuple[int, str, str]:
    return link.commit_id, link.digest, link.chain


def test_a_checkpoint_signs_four_lines_and_verifies_under_its_public_key() -> None:
    message = rules.checkpoint_message(1, CREDIT_CHAIN, NOV_1)
    assert message == (
        b"puhui ledger checkpoint v1\nposition 1\nchain " + CREDIT_CHAIN.encode() + b"\n"
        b"at 2026-11-01T00:00:00.000000Z\n"
    )
    secret = bytes(range(32))
    signer = checkpoint_keys.CheckpointSigner(lambda: (0, secret), lambda: {0: secret})
    version, signature = signer.sign(message)
    public = signer.public_keys()[version]
    assert checkpoint_keys.verify(public, message, signature)
    assert signer.verify(0, message, signature)
    assert not signer.verify(0, message.replace(b"position 1", b"position 2"), signature)
    assert not signer.verify(1, message, signature)
    # The private key is derived from the secret with its own context, never the secret.
    seed = hashlib.sha256(b"puhui checkpoint\x00" + secret).digest()
    assert checkpoint_keys.private_key(secret).private_bytes_raw() == seed


def test_a_public_key_is_written_as_pem_for_openssl() -> None:
    pem = rules.public_key_pem(bytes(32))
    assert pem == (
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        "-----END PUBLIC KEY-----\n"
    )


def test_docs_ledger_md_gives_the_same_worked_example_and_every_check() -> None:
    """An auditor reimplementing from docs/ledger.md gets the values the code computes, and
    finds each check of the chain described there."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "ledger.md").read_text(encoding="utf-8")
    assert CREDIT_DIGEST in text
    assert CREDIT_CHAIN in text
    assert ", ".join(rules.TRANSFER_COLUMNS[:4]) in text
    assert rules.CHECKPOINT_CONTEXT in text
    for check in (
        "transfer_uncommitted",
        "commit_altered",
        "chain_broken",
        "checkpoint_invalid",
        *ledger.FILE_CHECKS,
    ):
        assert f"| `{check}` |" in text, check
        assert check in {*ledger.CHECKS, *ledger.FILE_CHECKS}
