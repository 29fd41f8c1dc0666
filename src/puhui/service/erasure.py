"""Erasing a citizen (`domain.erasure` says what goes and what stays): on the citizen's own
request, or by an operator on a request whose identity was verified outside puhui."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from puhui.bootstrap import App
from puhui.domain import erasure
from puhui.domain.errors import InputError, NotFoundError
from puhui.service import queries

ROLES = ("citizen", "operator")
MAX_GROUNDS = 500


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure did."""

    erasure: int
    records: int
    at: datetime
    scrubbed: bool | None


def erase_subject(app: App, subject: str, by: str, grounds: str) -> Erased:
    """Erase the citizen with this phone or ID number.

    Raises:
        InputError: not a mobile number or resident ID number, or the grounds are missing.
        NotFoundError: puhui holds nothing for this citizen (or it was erased already).
    """
    return erase_pseudonym(app, queries.pseudonym_of(app, subject), by, grounds)


def erase_pseudonym(app: App, pseudonym: str, by: str, grounds: str) -> Erased:
    """Erase the citizen with this pseudonym (a citizen's own session knows only it).

    Raises:
        InputError: the grounds are missing or too long, or `by` is not a role that erases.
        NotFoundError: no citizen has this pseudonym.
    """
    grounds = grounds.strip()
    if by not in ROLES:
        raise InputError(f"an erasure is made by one of {', '.join(ROLES)}")
    if not grounds or len(grounds) > MAX_GROUNDS or not grounds.isprintable():
        raise InputError(f"say on what grounds, in 1 to {MAX_GROUNDS} printable characters")
    at = app.clock()
    done = app.erasures().erase(pseudonym, erasure.tombstone(), by, grounds, at)
    if done is None:
        raise NotFoundError("puhui holds no account for this citizen")
    erasure_id, records = done
    return Erased(erasure_id, records, at, app.erasures().scrub())
