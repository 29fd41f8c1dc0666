"""Worked examples of citizens' identifiers: one canonical form per person, keyed pseudonyms."""

from __future__ import annotations

import pytest

from puhui.domain.subjects import id_check_digit, key_fingerprint, normalise, pseudonymise

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+86 138 0013 8000",
        "138-0013-8000",
        "+8613800138000",
        "8613800138000",
        "86 138-0013-8000",
        " 138 0013 8000 ",
        "+86\t13800138000",
    ],
)
def test_every_spelling_of_one_mobile_number_is_one_person(raw: str) -> None:
    """Country prefix, spaces and hyphens are dropped: the spec's three examples and more."""
    assert normalise(raw) == "m:13800138000"


def test_a_resident_id_number_is_upper_cased() -> None:
    """The check character `x` is folded to `X`; the rest stays as sent."""
    assert normalise("11010519491231002x") == "id:11010519491231002X"
    assert normalise("11010519491231002X") == "id:11010519491231002X"


def test_an_id_number_may_be_written_in_groups() -> None:
    """Spaces and hyphens between the groups of an ID number are separators, not content."""
    assert normalise("110105 19491231 002X") == "id:11010519491231002X"


@pytest.mark.parametrize(
    ("first17", "check"),
    [
        ("11010519491231002", "X"),  # Σ = 167, 167 mod 11 = 2 → X
        ("44030419900101001", "1"),  # Σ = 176, 176 mod 11 = 0 → 1
        ("51010419850615123", "4"),  # Σ = 250, 250 mod 11 = 8 → 4
    ],
)
def test_the_check_character_follows_gb_11643(first17: str, check: str) -> None:
    """Σ digit × weight (7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) mod 11 indexes `10X98765432`."""
    assert id_check_digit(first17) == check
    assert normalise(first17 + check) == "id:" + first17 + check


def test_an_id_number_with_a_wrong_check_character_is_malformed() -> None:
    """Every other last character than the computed one is refused."""
    valid = "11010519491231002X"
    for wrong in "0123456789":
        assert normalise(valid[:17] + wrong) is None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12345",
        "1380013800",  # ten digits
        "138001380000",  # twelve digits
        "23800138000",  # does not start with 1
        "0086 13800138000",  # only +86 or 86 is a prefix
        "+85 13800138000",
        "138.0013.8000",  # dots are not separators
        "１３８００１３８０００",  # full-width digits
        "1３８00138000",  # some full-width digits
        "١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic digits
        "１１０１０５１９４９１２３１００２X",  # a full-width ID number
        "1101051949123100",  # sixteen characters
        "11010519491231002XX",
        "1101051949123100XX",  # X only as the last character
        "abcdefghijklmnopqr",
    ],
)
def test_anything_else_is_malformed(raw: str) -> None:
    """A subject that is neither a mobile number nor a valid ID number has no canonical form."""
    assert normalise(raw) is None


def test_a_pseudonym_is_the_same_for_every_spelling_of_a_number() -> None:
    """The pseudonym is computed from the canonical form, so spellings do not split a person."""
    spellings = ["+86 138 0013 8000", "13800138000", "138-0013-8000"]
    pseudonyms = {pseudonymise(KEY, normalise(s) or "") for s in spellings}
    assert len(pseudonyms) == 1


def test_a_pseudonym_is_hex_hmac_sha256_and_never_the_raw_number() -> None:
    """64 hex characters that contain neither the number nor its canonical form."""
    pseudonym = pseudonymise(KEY, "m:13800138000")
    assert len(pseudonym) == 64
    assert set(pseudonym) <= set("0123456789abcdef")
    assert "13800138000" not in pseudonym


def test_another_key_gives_another_pseudonym() -> None:
    """Without the platform secret a pseudonym cannot be recomputed from a number."""
    assert pseudonymise(KEY, "m:13800138000") != pseudonymise(OTHER_KEY, "m:13800138000")


def test_two_people_have_two_pseudonyms() -> None:
    """Different canonical forms give different pseudonyms under one key."""
    assert pseudonymise(KEY, "m:13800138000") != pseudonymise(KEY, "m:13800138001")
    assert pseudonymise(KEY, "m:13800138000") != pseudonymise(KEY, "id:11010519491231002X")


def test_a_key_fingerprint_identifies_a_key_without_being_a_pseudonym() -> None:
    """The fingerprint differs per key and is not the key's pseudonym of anything obvious."""
    assert key_fingerprint(KEY) == key_fingerprint(bytes(range(32)))
    assert key_fingerprint(KEY) != key_fingerprint(OTHER_KEY)
    assert KEY.hex() not in key_fingerprint(KEY)
    assert len(key_fingerprint(KEY)) == 32
