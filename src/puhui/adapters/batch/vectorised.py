"""Intake of the common record in Arrow kernels: the third rendering of `domain.intake`.

Most records a platform sends are well formed: every required field present, numbers and
timestamps in their plainest form, a known scene, region and subject. This module prepares those
records column by column (Arrow compute kernels, with a few per-record steps in Python: the
pseudonyms, the content digest, the text of coordinates written other than `repr` writes them,
the grams when they could overflow 64 bits) at 6 to 12 µs a record, with no statement to bind
or plan. Every other record (anything malformed, missing, ill-typed, signed,
written with an exponent, spaces or a non-ASCII ref, before 1971, …) is prepared by the
statement of intake itself, so this rendering never has to say why an odd record is odd; the
two parts are put back in row order. The tests hold it to the statement on generated chunks.

Records it takes (`common`), every test true:
- not malformed; `platform` this platform's code; `record_id` present, not too long and
  without a NUL;
- `subject` a valid mobile or ID number (it has a pseudonym);
- `scene` one of the spec's, `region` a known division; a recycling record's material one of
  the spec's;
- `start` (and `end`, when sent; a trip must send it) of the TIMESTAMP grammar, from 1971, on a
  day that exists;
- the scene's amount (`distance_km` of a trip, `quantity` of an event) and the other one when
  sent: unsigned decimals, up to 12 digits before the point and 10 after; the scene's amount
  at least a thousandth of its unit (zero and `amount_too_small` are the statement's);
- coordinates, when sent: decimals of up to 3 digits before the point and 15 after, an optional
  minus sign, within range;
- `material`, whatever the scene, without a NUL;
- `ref`, when sent, ASCII without a NUL and at most MAX_REF_KEY characters once trimmed;
  `device`, when sent, at most MAX_DEVICE characters, without quotes, backslashes or control
  characters (its JSON text is itself in quotes).

The reasons such a record can still fail: its end before its start, a start in the future, and
the plausibility rules (`RULES_IN_ARROW`, one rendering per rule of `domain.rules`).
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from puhui.adapters.batch.prepared import CAPS, PREPARED, TEXT_LIST
from puhui.domain import china_time, intake, rules
from puhui.domain.reasons import Reason
from puhui.domain.scenes import (
    EVENT_SCENES,
    MATERIALS,
    MAX_DEVICE,
    MAX_RECORD_ID,
    MAX_REF_KEY,
    TRIP_SCENES,
)

if TYPE_CHECKING:
    from puhui.adapters.batch.prepare import Preparer

# The TIMESTAMP grammar of `domain.intake` from 1971 on (a day's number is then never negative
# in China time), its parts named.
_TIMESTAMP = (
    r"^(?P<date>(?:197[1-9]|19[89][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2})[Tt ]"
    r"(?P<time>(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?:[Zz]|(?P<sign>[+-])(?P<hours>[01][0-9]|2[0-3]):(?P<minutes>[0-5][0-9]))$"
)
_AMOUNT = r"^(?P<whole>[0-9]{1,12})(?:\.(?P<fraction>[0-9]{1,10}))?$"
_COORDINATE = r"^-?[0-9]{1,3}(?:\.[0-9]{1,15})?$"
_JSON_UNSAFE = r'["\\\x00-\x1f\x7f]'
_COORDINATES = (("origin_lat", 90), ("origin_lon", 180), ("dest_lat", 90), ("dest_lon", 180))

Columns = Mapping[str, pa.Array]


def _true(mask: pa.Array) -> pa.Array:
    """A condition with null (unknown) read as false."""
    return pc.fill_null(mask, False)


def _trip(c: Columns) -> pa.Array:
    return pc.equal(c["kind"], "trip")


def _lasts(c: Columns) -> pa.Array:
    return pc.subtract(c["end_ms"], c["start_ms"])


def _speed(c: Columns) -> pa.Array:
    bound = pc.index_in(c["scene"], pa.array(list(rules.MAX_SPEED_KMH), pa.string()))
    kmh = pc.take(pa.array(list(rules.MAX_SPEED_KMH.values()), pa.int64()), bound)
    lasts = _lasts(c)
    return pc.and_kleene(
        pc.and_kleene(_trip(c), pc.greater(lasts, 0)),
        pc.greater(pc.multiply(c["amount_milli"], 3600), pc.multiply(kmh, lasts)),
    )


def _radians(degrees: pa.Array) -> pa.Array:
    return pc.multiply(degrees, math.pi / 180)  # as math.radians computes it


def _straight_line(c: Columns) -> pa.Array:
    lat1, lon1, lat2, lon2 = c["origin_lat"], c["origin_lon"], c["dest_lat"], c["dest_lon"]
    on_earth = _true(
        pc.and_(
            pc.and_(pc.less_equal(pc.abs(lat1), 90), pc.less_equal(pc.abs(lat2), 90)),
            pc.and_(pc.less_equal(pc.abs(lon1), 180), pc.less_equal(pc.abs(lon2), 180)),
        )
    )
    haversine = pc.add(
        pc.power(pc.sin(pc.divide(_radians(pc.subtract(lat2, lat1)), 2)), 2),
        pc.multiply(
            pc.multiply(pc.cos(_radians(lat1)), pc.cos(_radians(lat2))),
            pc.power(pc.sin(pc.divide(_radians(pc.subtract(lon2, lon1)), 2)), 2),
        ),
    )
    line = pc.multiply(
        2 * rules.EARTH_RADIUS_M, pc.asin(pc.min_element_wise(1.0, pc.sqrt(haversine)))
    )
    share = 1 - float(rules.STRAIGHT_LINE_TOLERANCE_SHARE)
    shortest = pc.subtract(pc.multiply(line, share), rules.STRAIGHT_LINE_TOLERANCE_M)
    return pc.and_kleene(
        pc.and_kleene(_trip(c), on_earth),
        pc.less(pc.cast(c["amount_milli"], pa.float64()), shortest),
    )


# Each rule of `domain.rules` over the normalised columns, true where a record violates it.
RULES_IN_ARROW: dict[Reason, Callable[[Columns], pa.Array]] = {
    Reason.NON_POSITIVE_DURATION: lambda c: pc.and_kleene(_trip(c), pc.less_equal(_lasts(c), 0)),
    Reason.TRIP_TOO_LONG: lambda c: pc.and_kleene(
        _trip(c), pc.greater(_lasts(c), rules.LONGEST_TRIP_MS)
    ),
    Reason.SPEED_IMPLAUSIBLE: _speed,
    Reason.DISTANCE_BELOW_STRAIGHT_LINE: _straight_line,
}
if RULES_IN_ARROW.keys() != rules.RULES.keys():  # pragma: no cover - a rule without rendering
    raise RuntimeError("every plausibility rule needs its rendering in Arrow kernels")


def violations(columns: Columns) -> dict[Reason, pa.Array]:
    """Every rule evaluated on every record (null read as not violated), in the rules' order."""
    return {code: _true(RULES_IN_ARROW[code](columns)) for code in rules.RULES}


def _instants(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Whether each text is a timestamp this rendering reads, and its epoch milliseconds."""
    parts = pc.extract_regex(text, _TIMESTAMP)
    date = pc.struct_field(parts, "date")
    moment = pc.strptime(
        pc.binary_join_element_wise(date, pc.struct_field(parts, "time"), " "),
        format="%Y-%m-%d %H:%M:%S",
        unit="s",
        error_is_null=True,
    )
    # strptime carries an impossible day over to the next month: such a text is not read here.
    exists = _true(
        pc.and_(
            pc.equal(pc.day(moment), pc.cast(pc.utf8_slice_codeunits(date, 8, 10), pa.int64())),
            pc.equal(pc.month(moment), pc.cast(pc.utf8_slice_codeunits(date, 5, 7), pa.int64())),
        )
    )
    fraction = _thousandths(pc.struct_field(parts, "fraction"))
    sign = pc.struct_field(parts, "sign")
    hours, minutes = (pc.struct_field(parts, n) for n in ("hours", "minutes"))
    offset_min = pc.if_else(
        pc.equal(sign, ""),
        0,
        pc.multiply(
            pc.add(
                pc.multiply(pc.cast(pc.if_else(pc.equal(hours, ""), "0", hours), pa.int64()), 60),
                pc.cast(pc.if_else(pc.equal(minutes, ""), "0", minutes), pa.int64()),
            ),
            pc.if_else(pc.equal(sign, "-"), -1, 1),
        ),
    )
    seconds = pc.cast(moment, pa.int64())
    ms = pc.add(
        pc.multiply(pc.subtract(seconds, pc.multiply(offset_min, 60)), 1000),
        pc.cast(pc.if_else(pc.is_null(fraction), "0", fraction), pa.int64()),
    )
    ok = pc.and_(_true(pc.is_valid(parts)), exists)
    return ok, pc.if_else(ok, ms, pa.scalar(None, pa.int64()))


def _thousandths(fraction: pa.Array) -> pa.Array:
    """The first three digits of a fraction's digits ('' for none), padded: thousandths, floored."""
    return pc.utf8_slice_codeunits(pc.binary_join_element_wise(fraction, "000", ""), 0, 3)


def _amounts(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Whether each text is an amount this rendering reads, and its thousandths (exact: the
    text has at most ten decimals, so intake's rounding to ten places changes nothing, and it
    is unsigned, so the floor is a cut)."""
    parts = pc.extract_regex(text, _AMOUNT)
    ok = _true(pc.is_valid(parts))
    whole = pc.if_else(ok, pc.struct_field(parts, "whole"), "0")
    thousandths = _thousandths(pc.struct_field(parts, "fraction"))
    milli = pc.add(
        pc.multiply(pc.cast(whole, pa.int64()), 1000),
        pc.cast(pc.if_else(ok, thousandths, "0"), pa.int64()),
    )
    return ok, pc.if_else(ok, milli, pa.scalar(None, pa.int64()))


def _absent_or(text: pa.Array, ok: pa.Array) -> pa.Array:
    return pc.or_(pc.is_null(text), _true(ok))


def prepare_in_arrow(preparer: Preparer, raw: pa.Table, received_ms: int) -> pa.Table:
    """Prepare a chunk: its common records here, the rest by the statement of intake; the
    table `Preparer.prepare` returns, in row order."""
    col = raw.column
    scene = col("scene").combine_chunks()
    trip = pc.is_in(scene, pa.array(TRIP_SCENES, pa.string()))
    event = pc.is_in(scene, pa.array(EVENT_SCENES, pa.string()))
    kind = pc.if_else(trip, "trip", pc.if_else(event, "event", pa.scalar(None, pa.string())))
    distance_ok, distance_milli = _amounts(col("distance_km"))
    quantity_ok, quantity_milli = _amounts(col("quantity"))
    start_ok, start_ms = _instants(col("start"))
    end_ok, end_ms = _instants(col("end"))
    subjects = col("subject")
    distinct = pc.unique(subjects.drop_null())
    names = [preparer.pseudonym(s) for s in distinct.to_pylist()]
    pseudonym = pc.take(pa.array(names, pa.string()), pc.index_in(subjects, distinct))
    ref = pc.utf8_trim(col("ref"), " ")
    device = col("device")
    material = col("material")
    recycling = pc.equal(scene, "recycling")
    coordinates: dict[str, pa.Array] = {}
    common = pc.and_(
        pc.and_(
            pc.and_(
                pc.is_null(col("malformed")), _true(pc.equal(col("platform"), preparer.platform))
            ),
            _true(pc.less_equal(pc.utf8_length(col("record_id")), MAX_RECORD_ID)),
        ),
        pc.and_(
            pc.and_(pc.is_valid(pseudonym), pc.or_(trip, event)),
            pc.is_in(col("region"), preparer.region_codes),
        ),
    )
    common = pc.and_(common, start_ok)
    common = pc.and_(common, pc.if_else(trip, end_ok, _absent_or(col("end"), end_ok)))
    common = pc.and_(
        common,
        pc.if_else(
            trip,
            pc.and_(distance_ok, _absent_or(col("quantity"), quantity_ok)),
            pc.and_(quantity_ok, _absent_or(col("distance_km"), distance_ok)),
        ),
    )
    common = pc.and_(
        common, pc.or_(pc.invert(recycling), _true(pc.is_in(material, pa.array(MATERIALS))))
    )
    # No NUL (`intake.NUL`) in the texts no grammar reads: the device's is excluded below.
    for text in (col("record_id"), material, ref):
        common = pc.and_(common, pc.invert(_true(pc.match_substring(text, intake.NUL))))
    # An amount of zero thousandths (zero, or `amount_too_small`) is left to the statement.
    common = pc.and_(
        common, _true(pc.not_equal(pc.if_else(trip, distance_milli, quantity_milli), 0))
    )
    common = pc.and_(
        common,
        pc.or_(
            pc.is_null(ref),
            _true(
                pc.and_(pc.string_is_ascii(ref), pc.less_equal(pc.utf8_length(ref), MAX_REF_KEY))
            ),
        ),
    )
    common = pc.and_(
        common,
        pc.or_(
            pc.is_null(device),
            pc.and_(
                pc.invert(_true(pc.match_substring_regex(device, _JSON_UNSAFE))),
                _true(pc.less_equal(pc.utf8_length(device), MAX_DEVICE)),
            ),
        ),
    )
    for name, bound in _COORDINATES:
        text = col(name)
        written = _true(pc.match_substring_regex(text, _COORDINATE))
        value = pc.cast(pc.if_else(written, text, pa.scalar(None, pa.string())), pa.float64())
        coordinates[name] = value
        common = pc.and_(
            common,
            pc.or_(pc.is_null(text), _true(pc.less_equal(pc.abs(value), bound))),
        )
    common = _true(common)

    n_common = pc.sum(common).as_py() or 0
    if n_common == 0:
        return preparer.prepare_by_statement(raw, received_ms)
    rest = raw.filter(pc.invert(common))
    c = {
        "row": col("row").filter(common),
        "platform": col("platform").filter(common),
        "record_id": col("record_id").filter(common),
        "scene": scene.filter(common),
        "region": col("region").filter(common),
        "kind": kind.filter(common),
        "material_sent": material.filter(common),
        "ref": pc.utf8_lower(ref.filter(common)),
        "start_ms": start_ms.filter(common),
        "end_sent_ms": end_ms.filter(common),
        "amount_milli": pc.if_else(trip, distance_milli, quantity_milli).filter(common),
        "pseudonym": pseudonym.filter(common),
        "device": device.filter(common),
        **{name: values.filter(common) for name, values in coordinates.items()},
        **{f"{name}_text": col(name).filter(common) for name, _ in _COORDINATES},
    }
    is_trip = pc.equal(c["kind"], "trip")
    c["end_ms"] = pc.if_else(is_trip, c["end_sent_ms"], pa.scalar(None, pa.int64()))
    checks = {
        Reason.END_BEFORE_START: _true(pc.and_kleene(is_trip, pc.less(c["end_ms"], c["start_ms"]))),
        Reason.START_IN_FUTURE: _true(
            pc.greater(c["start_ms"], received_ms + intake.FUTURE_TOLERANCE_MS)
        ),
        **violations(c),
    }
    size = len(c["row"])
    failing = [(str(code), mask) for code, mask in checks.items() if pc.any(mask).as_py()]
    reasons = _reason_lists(failing, size)
    valid = pc.equal(pc.list_value_length(reasons), 0)
    day = pc.cast(
        pc.cast(
            pc.divide(pc.add(c["start_ms"], china_time.OFFSET_MS), china_time.DAY_MS), pa.int32()
        ),
        pa.date32(),
    )
    material_out = pc.if_else(pc.equal(c["scene"], "recycling"), c["material_sent"], "")
    reprs = {name: _reprs(c[name], c[f"{name}_text"]) for name, _ in _COORDINATES}
    pinned = _pin(preparer, c, valid, material_out, day)
    checks_out = pc.if_else(
        valid,
        pc.if_else(
            pc.is_null(pinned["quant_key"]),
            pa.scalar([str(Reason.NO_METHODOLOGY)], TEXT_LIST),
            pa.scalar([], TEXT_LIST),
        ),
        reasons,
    )
    prepared = pa.table(
        {
            "row": c["row"],
            "platform": c["platform"],
            "record_id": c["record_id"],
            "scene": c["scene"],
            "region": c["region"],
            "kind": c["kind"],
            "reasons": reasons,
            "material": material_out,
            "ref": c["ref"],
            "start_ms": c["start_ms"],
            "end_ms": c["end_ms"],
            "amount_milli": c["amount_milli"],
            "pseudonym": c["pseudonym"],
            "detail": pa.nulls(size, pa.string()).fill_null(""),
            "extra": _extras(c, reprs),
            "digest": _digests(c, reprs),
            "day_cn": day,
            **pinned,
            "checks": checks_out,
        },
        schema=PREPARED,
    )
    if rest.num_rows == 0:
        return prepared
    together = pa.concat_tables([prepared, preparer.prepare_by_statement(rest, received_ms)])
    return together.take(pc.sort_indices(together.column("row")))


def _reason_lists(failing: list[tuple[str, pa.Array]], size: int) -> pa.Array:
    """The list of reasons of each record, in the order of `failing` (code, mask)."""
    if not failing:
        return pa.ListArray.from_arrays(
            pa.array([0] * (size + 1), pa.int32()), pa.array([], pa.string())
        ).cast(TEXT_LIST)
    lists: list[list[str]] = [[] for _ in range(size)]
    for code, mask in failing:
        for i in pc.indices_nonzero(mask).to_pylist():
            lists[i].append(code)
    return pa.array(lists, TEXT_LIST)


def _reprs(values: pa.Array, texts: pa.Array) -> pa.Array:
    """Each coordinate as `repr` prints it (the text intake hashes and writes in JSON). A text
    Arrow prints back the same, with a point and not below 1e-4 (where `repr` turns to an
    exponent), is that text already: both print the shortest digits that read back the same
    double. The others are printed by `repr`."""
    printed = pc.cast(values, pa.string())
    same = _true(
        pc.and_(
            pc.and_(pc.equal(printed, texts), pc.match_substring(texts, ".")),
            pc.greater_equal(pc.abs(values), 1e-4),
        )
    )
    out = pc.if_else(same, texts, pa.scalar(None, pa.string()))
    others = pc.indices_nonzero(pc.and_(pc.invert(same), pc.is_valid(values))).to_pylist()
    if not others:
        return out
    listed = out.to_pylist()
    for i, value in zip(
        others, pc.take(values, pa.array(others, pa.int64())).to_pylist(), strict=True
    ):
        listed[i] = repr(value)
    return pa.array(listed, pa.string())


def _extras(c: Columns, reprs: Mapping[str, pa.Array]) -> pa.Array:
    """The JSON of coordinates and device, as `json.dumps` writes it in `domain.intake`."""
    pieces: list[object] = []
    for i, (name, _) in enumerate(_COORDINATES):
        pieces += [("{" if i == 0 else ",") + f'"{name}":', pc.fill_null(reprs[name], "null")]
    device = pc.binary_join_element_wise('"', c["device"], '"', "")
    pieces += [',"device":', pc.fill_null(device, "null"), "}"]
    written = pc.binary_join_element_wise(*pieces, "")
    sent = pc.or_(
        pc.or_(pc.is_valid(c["origin_lat"]), pc.is_valid(c["dest_lat"])), pc.is_valid(c["device"])
    )
    return pc.if_else(sent, written, pa.scalar(None, pa.string()))


def _digests(c: Columns, reprs: Mapping[str, pa.Array]) -> pa.Array:
    """Digest of each record's content, as `domain.intake` joins and hashes it."""
    content = pc.binary_join_element_wise(
        c["platform"],
        c["record_id"],
        c["pseudonym"],
        c["scene"],
        c["region"],
        pc.cast(c["start_ms"], pa.string()),
        pc.cast(c["end_sent_ms"], pa.string()),
        pc.cast(c["amount_milli"], pa.string()),
        c["material_sent"],
        c["ref"],
        *(reprs[name] for name, _ in _COORDINATES),
        c["device"],
        chr(31),
        null_handling="skip",
    )
    sha256 = hashlib.sha256
    return pa.array(
        [sha256(v).hexdigest()[:32] for v in pc.cast(content, pa.binary()).to_pylist()],
        pa.string(),
    )


def _pin(
    preparer: Preparer, c: Columns, valid: pa.Array, material: pa.Array, day: pa.Array
) -> dict[str, pa.Array]:
    """The calculation of each valid record (computed once per distinct scene, region,
    material and day), its grams and its caps: the columns `quant_key` to `month_max_count`."""
    names = ("scene", "region", "material", "day_cn")
    values = pa.table(
        {"scene": c["scene"], "region": c["region"], "material": material, "day_cn": day}
    )
    distinct = values.filter(valid).group_by(list(names)).aggregate([])
    pins = [
        preparer.pinned(*combo)
        for combo in zip(*(distinct.column(n).to_pylist() for n in names), strict=True)
    ]

    def joined(table: pa.Table) -> pa.Array:
        return pc.binary_join_element_wise(
            *(table.column(n) for n in names[:3]), pc.cast(table.column("day_cn"), pa.string()), "|"
        )

    at = pc.if_else(
        valid, pc.index_in(joined(values), joined(distinct)), pa.scalar(None, pa.int32())
    )

    def each(value: Callable[[Any], object], kind: pa.DataType, caps: bool = False) -> pa.Array:
        listed = [None if p is None else value(p.caps if caps else p) for p in pins]
        return pc.take(pa.array(listed, kind), at)

    quant_key = each(lambda p: p.key, pa.string())
    numerators = [p.numerator for p in pins if p is not None]
    milli = c["amount_milli"]
    largest = pc.max(milli).as_py() or 0
    if all(0 <= n < 2**62 for n in numerators) and largest * max(numerators, default=0) < 2**62:
        computed = pc.divide(
            pc.multiply(milli, each(lambda p: p.numerator, pa.int64())),
            each(lambda p: p.denominator, pa.int64()),
        )
    else:  # exact whatever the size, in Python's integers
        found = [pins[i] if i is not None else None for i in at.to_pylist()]
        computed = pa.array(
            [
                None if p is None else m * p.numerator // p.denominator
                for p, m in zip(found, milli.to_pylist(), strict=True)
            ],
            pa.int64(),
        )
    return {
        "quant_key": quant_key,
        "methodology": each(lambda p: p.methodology, pa.string()),
        "computed_g": pc.fill_null(computed, 0),
        **{name: each(operator.itemgetter(name), pa.int64(), caps=True) for name in CAPS},
    }


class Pinned(NamedTuple):
    """The calculation a valid record is pinned to, as this rendering applies it: the grams of
    `amount_milli` thousandths are `amount_milli * numerator // denominator` (the exact floor
    of the amount times the reduction per unit, as `UnitQuantification.reduction_for`)."""

    key: str
    methodology: str
    numerator: int
    denominator: int
    caps: dict[str, int | None]

    @staticmethod
    def of(key: str, methodology: str, reduction_g: Decimal, caps: dict[str, int | None]) -> Pinned:
        numerator, denominator = reduction_g.as_integer_ratio()
        return Pinned(key, methodology, numerator, denominator * 1000, caps)
