"""The documentation says what the code does: reason codes, methodology pages, README."""

from __future__ import annotations

from pathlib import Path

import puhui
from puhui.adapters.methodology_files import load_catalogue
from puhui.domain.reasons import DESCRIPTIONS, Reason
from puhui.domain.rules import MAX_SPEED_KMH

ROOT = Path(__file__).resolve().parents[2]


def test_every_reason_code_is_documented_with_its_meaning() -> None:
    """docs/reasons.md has one row per code, with the description the code carries."""
    text = (ROOT / "docs" / "reasons.md").read_text(encoding="utf-8")
    for reason in Reason:
        assert f"| `{reason.value}` | {DESCRIPTIONS[reason]} |" in text, reason


def test_the_documented_speed_bounds_are_the_enforced_ones() -> None:
    """Each mode's bound in docs/reasons.md is the one the rule applies."""
    text = (ROOT / "docs" / "reasons.md").read_text(encoding="utf-8")
    for scene, kmh in MAX_SPEED_KMH.items():
        assert f"| `{scene}` | {kmh} |" in text, scene


def test_every_shipped_methodology_has_its_page() -> None:
    """docs/methodologies/<id>.md exists for each methodology and names its version."""
    for m in load_catalogue().methodologies:
        page = ROOT / "docs" / "methodologies" / f"{m.id}.md"
        assert page.is_file(), m.id
        assert m.version in page.read_text(encoding="utf-8"), m.ref


def test_the_package_exports_exactly_its_public_surface() -> None:
    """`puhui.__all__` is sorted and every name in it exists."""
    assert list(puhui.__all__) == sorted(puhui.__all__)
    for name in puhui.__all__:
        assert hasattr(puhui, name), name


def test_the_readme_shows_the_two_commands() -> None:
    """A new machine needs `make run` and `make test`, and the README says so."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run" in text
    assert "make test" in text
