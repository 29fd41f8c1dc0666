"""Intake, stated once: what a record as sent becomes, and every reason it cannot be credited.

This is the plain statement of the checks and the normalisation of activity-record v1
(`spec/activity-record-v1.md`), one record at a time: the judge of the DuckDB rendering in
`adapters/batch/prepare.py`, which prepares large chunks, and what prepares small chunks (API
submissions) itself. In: the text of each field as read (`adapters/batch/reader.py`: blank is
None). Out: typed, normalised values, every reason the record fails (in a fixed order, so that
receipts are the same whichever path prepared them), its pseudonym (the raw subject goes no
further), a digest of its content to tell a replay from a conflict, and its China day.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext

from puhui.domain import china_time, subjects
from puhui.domain.reasons import Reason
from puhui.domain.rules import RULES, Measured
from puhui.domain.scenes import (
    EVENT_SCENES,
    MATERIALS,
    MAX_DEVICE,
    MAX_LINE,
    MAX_RECORD_ID,
    MAX_REF_KEY,
    TRIP_SCENES,
)

# Records may start a little after the moment they are received: platforms' clocks drift.
FUTURE_TOLERANCE_MS = 5 * 60 * 1000

REQUIRED = ("platform", "record_id", "subject", "scene", "region", "start")
NUMBERS = ("distance_km", "quantity", "origin_lat", "origin_lon", "dest_lat", "dest_lon")
# The fields whose text is not read by a grammar (numbers and timestamps are), in the order
# their NUL characters are reported. A NUL is never valid: the reader also marks with one a JSON
# object or array sent where the spec has a string or a number, and a string with a lone
# surrogate (`reader.NOT_TEXT`).
TEXTS = ("platform", "subject", "scene", "region", "material", "ref", "device")
NUL = "\x00"
# The detail of a record the reader could not read at all, by the reader's reason.
MALFORMED_DETAILS = {
    Reason.MALFORMED_ROW: "not a JSON object or not a row of the header's width",
    Reason.ROW_TOO_LONG: f"longer than {MAX_LINE // 2**20} MiB",
    Reason.INVALID_ENCODING: "not UTF-8",
}

# RFC 3339 with an offset (`T`, `t` or a space between date and time, up to 9 fraction digits),
# in the years 1900 to 2999: hours 00–23, minutes and seconds 00–59, offsets up to ±23:59. The
# groups capture year, month, day, hour, minute, second, fraction, offset sign, hours, minutes.
TIMESTAMP = (
    r"^((?:19|2[0-9])[0-9]{2})-([0-9]{2})-([0-9]{2})[Tt ]"
    r"([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))$"
)
# A decimal number, optionally signed, with an optional exponent, spaces around allowed.
NUMBER = r"^[ \t\n\f\r]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\f\r]*$"

_TIMESTAMP = re.compile(TIMESTAMP[1:-1])
_NUMBER = re.compile(NUMBER[1:-1])
_WIDE = Context(prec=80)
_TEN_PLACES = Decimal("1e-10")
# An amount is kept with ten decimals, and must be below 10^15 of its unit (a thousand million
# million km or kg): its thousandths fit 64 bits.
AMOUNT_LIMIT = 10**15


@dataclass(frozen=True, slots=True)
class Normalised:
    """A record after intake's checks: the columns preparation hands to quantification.

    Attributes:
        row: position in its file or submission, from 1.
        platform, record_id: as sent (record_id None when ill-typed).
        scene: the scene code, None unless one of the spec's.
        region: the division code, None unless a known one.
        kind: `trip` or `event`, None for an unknown scene.
        reasons: every reason code it fails, in a fixed order; empty when valid.
        material: `''` outside recycling; the material when one of the spec's; else None.
        ref: trimmed and case-folded; `sha256:<hex>` when longer than MAX_REF_KEY.
        start_ms: when it began, epoch milliseconds (UTC); end_ms only for trips.
        amount_milli: km (trips) or the scene's unit (events) × 1000, floored.
        pseudonym: HMAC of the canonical subject; None when the subject is malformed.
        detail: which fields were missing or ill-typed ('' when none).
        extra: JSON of coordinates and device (`sha256:<hex>` when longer than MAX_DEVICE),
            when any was sent.
        digest: of the content as sent (32 hex characters).
        day_cn: the China day it started on.
    """

    row: int
    platform: str | None
    record_id: str | None
    scene: str | None
    region: str | None
    kind: str | None
    reasons: tuple[str, ...]
    material: str | None
    ref: str | None
    start_ms: int | None
    end_ms: int | None
    amount_milli: int | None
    pseudonym: str | None
    detail: str | None
    extra: str | None
    digest: str
    day_cn: date | None


def instant_ms(text: str | None) -> int | None:
    """The epoch milliseconds of a timestamp of the TIMESTAMP grammar, None when it is not one
    or names a day that does not exist. Fractions of a millisecond are dropped (floored).

    >>> instant_ms("2026-10-01T08:00:00.1239+08:00")
    1790812800123
    >>> instant_ms("2026-02-30T08:00:00Z") is None, instant_ms("2026-10-01T08:00:00+24:00") is None
    (True, True)
    """
    found = None if text is None else _TIMESTAMP.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    try:
        days = (date(year, month, day) - china_time.EPOCH).days
    except ValueError:  # a day that does not exist
        return None
    offset_min = 0
    if found.group(8):
        sign = 1 if found.group(8) == "+" else -1
        offset_min = sign * (int(found.group(9)) * 60 + int(found.group(10)))
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offset_min * 60
    return seconds * 1000 + int(((found.group(7) or "") + "000")[:3])


def pseudonyms(secret: bytes, subject: str) -> tuple[str | None, str | None]:
    """The pseudonym of a subject, or, when it is malformed, a keyed hash of its text (for the
    content digest): never the subject itself."""
    canonical = subjects.normalise(subject)
    if canonical is None:
        return None, hmac.digest(secret, subject.encode(), "sha256").hex()
    return subjects.pseudonymise(secret, canonical), None


def double(text: str | None) -> float | None:
    """The value of a number of the NUMBER grammar as a double; None for any other text."""
    if text is None or _NUMBER.fullmatch(text) is None:
        return None
    return float(text)


def amount_milli(text: str | None) -> int | None:
    """Thousandths of an amount, floored, from its text (kept to ten decimals first, half up);
    None when it is not a number of the NUMBER grammar or is out of range.

    >>> amount_milli("2.0009"), amount_milli("-0.0004"), amount_milli("1e3"), amount_milli("1_0")
    (2000, -1, 1000000, None)
    """
    if text is None or _NUMBER.fullmatch(text) is None:
        return None
    with localcontext(_WIDE):
        value = Decimal(text.strip())
        if not abs(value) < AMOUNT_LIMIT:
            return None
        kept = value.quantize(_TEN_PLACES, ROUND_HALF_UP)
        if not abs(kept) < AMOUNT_LIMIT:
            return None
        return int((kept * 1000).to_integral_value(ROUND_FLOOR))


def below_resolution(text: str) -> bool:
    """Whether an amount whose thousandths floor to zero is above zero when kept to ten
    decimals: it would earn nothing (`amount_too_small`), where zero itself is an amount.

    >>> below_resolution("0.0004"), below_resolution("0"), below_resolution("1e-400")
    (True, False, False)
    """
    with localcontext(_WIDE):
        kept = Decimal(text.strip()).quantize(_TEN_PLACES, ROUND_HALF_UP)
        return Decimal(0) < kept < Decimal("0.001")


def text_of_double(value: float | None) -> str | None:
    """A double as the engines print it."""
    return None if value is None else repr(value)


def fold(text: str) -> str:
    """Fold case the way refs are compared: each character to its simple lower case.

    Python's `lower` applies two mappings of more than one character (İ to i and a combining
    dot, a final Σ to ς) that the engines' simple mapping does not.

    >>> fold("İSTANBUL-ΟΔΟΣ")
    'istanbul-οδοσ'
    """
    return text.replace("İ", "i").replace("Σ", "σ").lower()


def _outside(value: float | None, bound: int) -> bool:
    return value is not None and not (-bound <= value <= bound)


def normalise(
    fields: Mapping[str, str | None],
    *,
    row: int,
    malformed: str | None,
    platform: str,
    received_ms: int,
    known_region: Callable[[str], bool],
    secret: bytes,
) -> Normalised:
    """Check and normalise one record as sent by `platform`, received at `received_ms`.

    `fields` holds the text of each field of the spec (None when absent or blank); `malformed`
    is the reader's reason when the row could not be parsed at all.
    """
    f = {
        name: fields.get(name) for name in (*REQUIRED, "end", *NUMBERS, "material", "ref", "device")
    }
    with_nul = [name for name in TEXTS if f[name] is not None and NUL in (f[name] or "")]
    scene, region, material = f["scene"], f["region"], f["material"]
    # A ref or device holding a NUL is not kept: the record is rejected, and no database text
    # may hold one.
    device = None if "device" in with_nul else f["device"]
    kind = "trip" if scene in TRIP_SCENES else "event" if scene in EVENT_SCENES else None
    ref = None if f["ref"] is None or "ref" in with_nul else fold(f["ref"].strip(" "))
    start_ms, end_ms = instant_ms(f["start"]), instant_ms(f["end"])
    amount_raw = f["distance_km"] if kind == "trip" else f["quantity"]
    milli = amount_milli(amount_raw)
    coords = {k: double(f[k]) for k in ("origin_lat", "origin_lon", "dest_lat", "dest_lon")}
    region_known = region is not None and known_region(region)

    subject = f["subject"]
    pseudonym, keyed = (None, None) if subject is None else pseudonyms(secret, subject)

    missing = [name for name in REQUIRED if f[name] is None]
    ill_typed = [n for n in NUMBERS if f[n] is not None and _NUMBER.fullmatch(f[n] or "") is None]
    ill_typed += [
        n for n, v in (("start", start_ms), ("end", end_ms)) if f[n] is not None and v is None
    ]
    ill_typed += [
        name
        for name, bound in (
            ("origin_lat", 90),
            ("dest_lat", 90),
            ("origin_lon", 180),
            ("dest_lon", 180),
        )
        if _outside(coords[name], bound)
    ]
    if amount_raw is not None and milli is None and _NUMBER.fullmatch(amount_raw):
        ill_typed.append("distance_km" if kind == "trip" else "quantity")  # too large to keep
    ill_typed += with_nul
    distance, quantity = double(f["distance_km"]), double(f["quantity"])
    measured = Measured(kind, scene, start_ms, end_ms, milli, **coords)
    checks: list[tuple[bool, str]] = [
        (bool(missing), Reason.MISSING_FIELD),
        (bool(ill_typed), Reason.ILL_TYPED_FIELD),
        (
            f["record_id"] is not None and len(f["record_id"] or "") > MAX_RECORD_ID,
            Reason.RECORD_ID_TOO_LONG,
        ),
        (f["record_id"] is not None and NUL in (f["record_id"] or ""), Reason.ILL_TYPED_RECORD_ID),
        (f["platform"] is not None and f["platform"] != platform, Reason.PLATFORM_MISMATCH),
        (scene is not None and kind is None, Reason.UNKNOWN_SCENE),
        (region is not None and not region_known, Reason.UNKNOWN_REGION),
        (subject is not None and pseudonym is None, Reason.MALFORMED_SUBJECT),
        (scene == "recycling" and material is None, Reason.MISSING_MATERIAL),
        (
            scene == "recycling" and material is not None and material not in MATERIALS,
            Reason.UNKNOWN_MATERIAL,
        ),
        (kind == "trip" and amount_raw is None, Reason.MISSING_DISTANCE),
        (kind == "event" and amount_raw is None, Reason.MISSING_QUANTITY),
        (kind == "trip" and f["end"] is None, Reason.MISSING_END),
        (
            (milli is not None and milli < 0)
            or (distance is not None and distance < 0)
            or (quantity is not None and quantity < 0),
            Reason.NEGATIVE_AMOUNT,
        ),
        (
            milli == 0 and amount_raw is not None and below_resolution(amount_raw),
            Reason.AMOUNT_TOO_SMALL,
        ),
        (
            kind != "event" and end_ms is not None and start_ms is not None and end_ms < start_ms,
            Reason.END_BEFORE_START,
        ),
        (
            start_ms is not None and start_ms > received_ms + FUTURE_TOLERANCE_MS,
            Reason.START_IN_FUTURE,
        ),
        *((r.violated(measured), code) for code, r in RULES.items()),
    ]
    reasons = (malformed,) if malformed else tuple(str(code) for failed, code in checks if failed)

    if malformed:
        detail = MALFORMED_DETAILS[Reason(malformed)]
    else:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if ill_typed:
            parts.append("ill-typed: " + ", ".join(ill_typed))
        detail = "; ".join(parts)

    extra = None
    if coords["origin_lat"] is not None or coords["dest_lat"] is not None or device is not None:
        kept = device
        if kept is not None and len(kept) > MAX_DEVICE:
            kept = "sha256:" + hashlib.sha256(kept.encode()).hexdigest()
        extra = json.dumps({**coords, "device": kept}, ensure_ascii=False, separators=(",", ":"))

    content = (
        f["platform"], f["record_id"], pseudonym or keyed, scene, region,
        f["start"] if start_ms is None else str(start_ms),
        f["end"] if end_ms is None else str(end_ms),
        amount_raw if milli is None else str(milli),
        material, ref, *(text_of_double(coords[k]) for k in coords), device,
    )  # fmt: skip
    digest = hashlib.sha256(chr(31).join(v for v in content if v is not None).encode()).hexdigest()

    if ref is not None and len(ref) > MAX_REF_KEY:
        ref = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
    if scene is not None and scene != "recycling":
        material = ""
    elif material not in MATERIALS:
        material = None
    day = None if start_ms is None else china_time.day_of_ms(start_ms)
    return Normalised(
        row=row,
        platform=f["platform"],
        # An ill-typed record_id is no id: its receipt carries none.
        record_id=None if NUL in (f["record_id"] or "") else f["record_id"],
        scene=scene if kind is not None else None,
        region=region if region_known else None,
        kind=kind,
        reasons=reasons,
        material=material,
        ref=ref,
        start_ms=start_ms,
        end_ms=end_ms if kind == "trip" else None,
        amount_milli=milli,
        pseudonym=pseudonym,
        detail=detail,
        extra=extra,
        digest=digest[:32],
        day_cn=day,
    )
