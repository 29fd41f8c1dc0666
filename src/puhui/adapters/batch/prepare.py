"""Validate, normalise, pseudonymise and quantify a chunk of raw records: set-based in DuckDB
for large chunks, column by column in Arrow kernels (`vectorised`) for some thousands of
records, or record by record by the statement of intake (`domain.intake`) for small chunks.

In: a raw chunk from `reader` (all strings). Out: one row per record with typed, normalised
columns, the list of every reason it fails (empty when valid), its pseudonym, a digest of its
normalised content, and, when valid, the methodology and grams computed before caps and
deduplication. Raw subjects live only in this step's memory.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from puhui.adapters.batch.prepared import CAPS, PREPARED
from puhui.adapters.batch.vectorised import Pinned, prepare_in_arrow
from puhui.domain import china_time, intake, rules
from puhui.domain.errors import FactorNotFoundError
from puhui.domain.methodology import MILLI, Catalogue, UnitQuantification
from puhui.domain.reasons import Reason
from puhui.domain.scenes import (
    EVENT_SCENES,
    MATERIALS,
    MAX_DEVICE,
    MAX_RECORD_ID,
    MAX_REF_KEY,
    TRIP_SCENES,
)
from puhui.domain.settlement import caps_of

# Up to FEW_ROWS records the preparing statements are read through the DB-API result
# (`execute`), which copies the rows once more into Arrow: a relation (`sql`) would bind each
# statement twice, and binding costs more than the copy there (1 600 records: 43 against
# 56 ms). Larger chunks are read through a relation, without the copy (100 000 records: the
# same time either way, and a copy of the chunk less in memory).
warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)

# Up to this many records DuckDB also runs the preparing statements with one optimizer only
# (common subexpressions: the statements repeat their parsing expressions): measured, 1 600
# records 43 → 36 ms, 20 000 records 161 → 128 ms; 100 000 records were slower (557 against
# 515 ms).
FEW_ROWS = 20_000
_KEPT_OPTIMIZER = "common_subexpressions"
# Up to this many records a chunk is prepared in Arrow kernels rather than by DuckDB's
# statements, which run on every core and off the GIL: measured on records of the benchmark's
# files, 20 000 records 159–230 ms in Arrow against 202–255 ms in DuckDB, 100 000 records 694–712
# against 597–741 ms; a group of 1 600 API records 15 against 44 ms.
ARROW_PREPARE = 20_000

_TIMESTAMP = intake.TIMESTAMP
_NUMBER = intake.NUMBER


def _number(column: str) -> str:
    """The value of a number column as a double, when its text is a number of the spec's."""
    return f"case when regexp_matches({column}, '{_NUMBER}') then try_cast({column} as double) end"


def _instant(column: str) -> str:
    """The instant of a timestamp column, its fraction cut to milliseconds first (DuckDB would
    round it to microseconds)."""
    return (
        f"try_cast(regexp_replace(upper({column}), '(\\.[0-9]{{3}})[0-9]+', '\\1') as timestamptz)"
    )


@dataclass(frozen=True, slots=True)
class Quantified:
    """A unit quantification with the key it is stored under."""

    key: str
    unit: UnitQuantification


def quantification_key(q: UnitQuantification) -> str:
    """A digest identifying a calculation: same methodology, factors and values, same key."""
    return hashlib.sha256(trace_json(q).encode()).hexdigest()


def calculation_row(q: UnitQuantification) -> tuple[dict[str, str], str]:
    """The columns and the trace JSON a calculation is stored with in `quantifications`."""
    columns = {
        "methodology": q.methodology,
        "scene": q.scene,
        "region": q.region,
        "material": q.material,
        "unit": q.unit,
        "reduction_per_unit": str(q.reduction_g),
    }
    return columns, trace_json(q)


def trace_json(q: UnitQuantification) -> str:
    """The calculation of a unit quantification as canonical JSON, stored with every credit."""
    return json.dumps(
        {
            "methodology": q.methodology,
            "scene": q.scene,
            "region": q.region,
            "material": q.material,
            "unit": q.unit,
            "baseline_formula": q.baseline_formula,
            "project_formula": q.project_formula,
            "baseline_g": str(q.baseline_g),
            "project_g": str(q.project_g),
            "reduction_g": str(q.reduction_g),
            "names": [
                {
                    "name": n.name,
                    "value": str(n.value),
                    "unit": n.unit,
                    "evidence": str(n.evidence),
                    "source": n.source,
                    "factor_id": n.factor_id,
                    "region_asked": n.region_asked,
                    "region_used": n.region_used,
                    "region_level": n.region_level,
                    "derivation": n.derivation,
                }
                for n in q.names
            ],
        },
        ensure_ascii=False,
        sort_keys=True,
    )


class Preparer:
    """Turns raw chunks into checked, quantified records for one submitting platform.

    Chunks of up to `small_chunk` records are prepared by the statement of intake itself
    (`domain.intake`, a record at a time), chunks of up to `arrow_chunk` in Arrow kernels
    (`vectorised`: its common records; the others by the statement), larger ones by the DuckDB
    statements below: a DuckDB statement costs tens of milliseconds to bind and plan whatever
    its data. All give the same table, and the tests hold each rendering to the statement.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        secret: bytes,
        platform: str,
        small_chunk: int = 0,
        arrow_chunk: int = 0,
    ) -> None:
        self.catalogue = catalogue
        self.secret = secret
        self.platform = platform
        self.small_chunk = small_chunk
        self.arrow_chunk = arrow_chunk
        self._regions = frozenset(catalogue.regions.codes())
        self.region_codes = pa.array(sorted(self._regions), pa.string())
        self._pinned: dict[str, Pinned] = {}
        self.con = duckdb.connect()
        self.con.execute("set TimeZone = 'UTC'")
        self.con.register(
            "valid_regions", pa.table({"code": pa.array(catalogue.regions.codes(), pa.string())})
        )
        self._skipped_optimizers = ",".join(
            name
            for (name,) in self.con.execute("select name from duckdb_optimizers()").fetchall()
            if name != _KEPT_OPTIMIZER
        )
        self.boundaries = catalogue.boundaries()
        self.quantified: dict[tuple[str, str, str, int], Quantified | None] = {}
        # prepare() may run in a worker thread while units() is read by the settling thread.
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release the engine."""
        self.con.close()

    def prepare(self, raw: pa.Table, received_ms: int) -> pa.Table:
        """Validate, normalise and quantify one chunk."""
        if raw.num_rows <= self.small_chunk:
            return self.prepare_by_statement(raw, received_ms)
        if raw.num_rows <= self.arrow_chunk:
            return prepare_in_arrow(self, raw, received_ms)
        # Optimising these statements costs more than it saves on a few thousand records.
        few = raw.num_rows <= FEW_ROWS
        if few:
            self.con.execute(f"set disabled_optimizers = '{self._skipped_optimizers}'")
        try:
            return self._prepare_in_duckdb(raw, received_ms, few)
        finally:
            if few:
                self.con.execute("reset disabled_optimizers")

    def _prepare_in_duckdb(self, raw: pa.Table, received_ms: int, few: bool) -> pa.Table:
        def run(sql: str) -> pa.Table:
            if few:
                return self.con.execute(sql).to_arrow_table()
            return self.con.sql(sql).to_arrow_table()

        self.con.register("raw", raw)
        self.con.register("subject_map", self._pseudonyms(raw))
        normal = run(self._normalise_sql(received_ms))
        self.con.unregister("raw")
        self.con.unregister("subject_map")
        self.con.register("normal", normal)
        self.con.register("quant", self._quantify(normal))
        out = run(_QUANTIFY_SQL)
        self.con.unregister("normal")
        self.con.unregister("quant")
        return out

    def prepare_by_statement(self, raw: pa.Table, received_ms: int) -> pa.Table:
        """Validate, normalise and quantify one chunk record by record, by `domain.intake`."""
        names = PREPARED.names  # a new list at every call: read once
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for fields in raw.to_pylist():
            n = intake.normalise(
                fields,
                row=fields["row"],
                malformed=fields["malformed"],
                platform=self.platform,
                received_ms=received_ms,
                known_region=self._regions.__contains__,
                secret=self.secret,
            )
            found = None
            material = n.material
            if not n.reasons and n.scene and n.region and material is not None and n.day_cn:
                found = self._quantified(n.scene, n.region, material, n.day_cn)
            caps: dict[str, int | None] = dict.fromkeys(CAPS)
            computed_g = 0
            if found is not None:
                caps = self._caps(found)
                computed_g = found.unit.reduction_for(Decimal(n.amount_milli or 0) * MILLI)
            row = {
                **{name: getattr(n, name) for name in _NORMALISED},
                "reasons": list(n.reasons),
                "quant_key": None if found is None else found.key,
                "methodology": None if found is None else found.unit.methodology,
                "computed_g": computed_g,
                **caps,
                "checks": list(n.reasons) if n.reasons or found else [Reason.NO_METHODOLOGY.value],
            }
            for name in names:
                columns[name].append(row[name])
        return pa.table(columns, schema=PREPARED)

    def pseudonym(self, subject: str) -> str | None:
        """The pseudonym of a raw subject, None when it is malformed."""
        return intake.pseudonyms(self.secret, subject)[0]

    def pinned(self, scene: str, region: str, material: str, day: date) -> Pinned | None:
        """The calculation a valid record of these values is pinned to, None when no
        methodology quantifies it."""
        found = self._quantified(scene, region, material, day)
        if found is None:
            return None
        if found.key not in self._pinned:
            self._pinned[found.key] = Pinned.of(
                found.key, found.unit.methodology, found.unit.reduction_g, self._caps(found)
            )
        return self._pinned[found.key]

    def _pseudonyms(self, raw: pa.Table) -> pa.Table:
        """Map each distinct raw subject of the chunk to its pseudonym (null when malformed) and
        to a keyed hash of the raw text (for the content digest of malformed records)."""
        raws = pc.unique(raw.column("subject").drop_null()).to_pylist()
        pairs = [intake.pseudonyms(self.secret, value) for value in raws]
        return pa.table(
            {
                "subject": pa.array(raws, pa.string()),
                "pseudonym": pa.array([p for p, _ in pairs], pa.string()),
                "keyed": pa.array([k for _, k in pairs], pa.string()),
            }
        )

    def _normalise_sql(self, received_ms: int) -> str:
        trips = _sql_list(TRIP_SCENES)
        events = _sql_list(EVENT_SCENES)
        materials = _sql_list(MATERIALS)
        required = ("platform", "record_id", "subject", "scene", "region", "start")
        missing = " ".join(f"case when r.{f} is null then '{f}' end," for f in required)
        numbers = ("distance_km", "quantity", "origin_lat", "origin_lon", "dest_lat", "dest_lon")
        ill_numbers = " ".join(
            f"case when r.{f} is not null and not regexp_matches(r.{f}, '{_NUMBER}') "
            f"then '{f}' end,"
            for f in numbers
        )
        with_nul = " ".join(
            f"case when contains(r.{f}, chr(0)) then '{f}' end," for f in intake.TEXTS
        )
        platform = self.platform.replace("'", "''")
        malformed_details = (
            "case malformed "
            + " ".join(
                f"when '{code}' then '{text.replace(chr(39), chr(39) * 2)}'"
                for code, text in intake.MALFORMED_DETAILS.items()
            )
            + " end"
        )
        rule_checks = " ".join(
            f"case when coalesce(({r.predicate()}), false) then '{code}' end,"
            for code, r in rules.RULES.items()
        )
        return f"""
        with typed as (
            select
                r.row, r.malformed, r.platform, r.record_id, r.subject as subject_raw, r.scene,
                r.region, r.material,
                -- A ref or device holding a NUL is not kept (the record is rejected).
                case when not contains(r.device, chr(0)) then r.device end as device,
                case when not contains(r.ref, chr(0)) then lower(trim(r.ref)) end as ref,
                list_filter([{with_nul}], lambda x: x is not null) as nul_fields,
                contains(r.record_id, chr(0)) as record_id_nul,
                r.start as start_raw, r."end" as end_raw,
                case when regexp_matches(r.start, '{_TIMESTAMP}')
                     then epoch_ms({_instant("r.start")}) end as start_ms,
                case when regexp_matches(r."end", '{_TIMESTAMP}')
                     then epoch_ms({_instant('r."end"')}) end as end_ms,
                case when r.scene in ({trips}) then 'trip'
                     when r.scene in ({events}) then 'event' end as kind,
                r.region in (select code from valid_regions) as region_known,
                case when r.scene in ({trips}) then r.distance_km else r.quantity end as amount_raw,
                r.distance_km as distance_raw, r.quantity as quantity_raw,
                {_number("r.origin_lat")} as origin_lat,
                {_number("r.origin_lon")} as origin_lon,
                {_number("r.dest_lat")} as dest_lat,
                {_number("r.dest_lon")} as dest_lon,
                list_filter([{missing}], lambda x: x is not null) as missing_fields,
                list_filter([
                    {ill_numbers}
                    case when r.start is not null and (not regexp_matches(r.start, '{_TIMESTAMP}')
                         or {_instant("r.start")} is null) then 'start' end,
                    case when r."end" is not null and (not regexp_matches(r."end", '{_TIMESTAMP}')
                         or {_instant('r."end"')} is null) then 'end' end,
                    case when {_number("r.origin_lat")} not between -90 and 90 then 'origin_lat' end,
                    case when {_number("r.dest_lat")} not between -90 and 90 then 'dest_lat' end,
                    case when {_number("r.origin_lon")} not between -180 and 180 then 'origin_lon' end,
                    case when {_number("r.dest_lon")} not between -180 and 180 then 'dest_lon' end
                ], lambda x: x is not null) as ill_typed_fields,
                s.pseudonym, s.keyed
            from raw r left join subject_map s on s.subject = r.subject
        ),
        read_amounts as (
            select *,
                case when regexp_matches(amount_raw, '{_NUMBER}')
                      and abs(try_cast(trim(amount_raw) as decimal(38, 10))) < {intake.AMOUNT_LIMIT}
                     then floor(try_cast(trim(amount_raw) as decimal(38, 10)) * 1000)::bigint
                end as amount_milli
            from typed
        ),
        amounts as (
            -- A number too large to keep is ill-typed too, and so is a text with a NUL.
            select * replace (
                list_concat(
                    case when regexp_matches(amount_raw, '{_NUMBER}') and amount_milli is null
                         then list_append(ill_typed_fields,
                                          case when kind = 'trip' then 'distance_km' else 'quantity' end)
                         else ill_typed_fields end,
                    nul_fields) as ill_typed_fields)
            from read_amounts
        ),
        checked as (
            select *,
                list_filter([
                    malformed,
                    case when len(missing_fields) > 0 then '{Reason.MISSING_FIELD}' end,
                    case when len(ill_typed_fields) > 0 then '{Reason.ILL_TYPED_FIELD}' end,
                    case when length(record_id) > {MAX_RECORD_ID} then '{Reason.RECORD_ID_TOO_LONG}' end,
                    case when record_id_nul then '{Reason.ILL_TYPED_RECORD_ID}' end,
                    case when platform <> '{platform}' then '{Reason.PLATFORM_MISMATCH}' end,
                    case when scene is not null and kind is null then '{Reason.UNKNOWN_SCENE}' end,
                    case when region is not null and not region_known
                         then '{Reason.UNKNOWN_REGION}' end,
                    case when subject_raw is not null and pseudonym is null
                         then '{Reason.MALFORMED_SUBJECT}' end,
                    case when scene = 'recycling' and material is null then '{Reason.MISSING_MATERIAL}' end,
                    case when scene = 'recycling' and material not in ({materials})
                         then '{Reason.UNKNOWN_MATERIAL}' end,
                    case when kind = 'trip' and amount_raw is null then '{Reason.MISSING_DISTANCE}' end,
                    case when kind = 'event' and amount_raw is null then '{Reason.MISSING_QUANTITY}' end,
                    case when kind = 'trip' and end_raw is null then '{Reason.MISSING_END}' end,
                    case when amount_milli < 0
                           or {_number("distance_raw")} < 0
                           or {_number("quantity_raw")} < 0
                         then '{Reason.NEGATIVE_AMOUNT}' end,
                    case when amount_milli = 0
                          and try_cast(trim(amount_raw) as decimal(38, 10)) > 0
                         then '{Reason.AMOUNT_TOO_SMALL}' end,
                    case when kind is distinct from 'event' and end_ms < start_ms
                         then '{Reason.END_BEFORE_START}' end,
                    case when start_ms > {received_ms + intake.FUTURE_TOLERANCE_MS} then '{Reason.START_IN_FUTURE}' end,
                    {rule_checks}
                ], lambda x: x is not null) as reasons
            from amounts
        )
        -- Only values from the spec's vocabularies are kept (an unknown scene, region or material
        -- is rejected and stored as null); a ref longer than the claims index allows is kept as
        -- its digest. The content digest below is of the values as sent.
        select
            row, platform, case when not record_id_nul then record_id end as record_id,
            case when kind is not null then scene end as scene,
            case when region_known then region end as region,
            kind,
            case when malformed is not null then [malformed] else reasons end as reasons,
            case when scene <> 'recycling' then ''
                 when material in ({materials}) then material end as material,
            case when length(ref) > {MAX_REF_KEY} then 'sha256:' || sha256(ref) else ref end as ref,
            start_ms, case when kind = 'trip' then end_ms end as end_ms, amount_milli,
            pseudonym,
            case when malformed is not null then {malformed_details}
            else concat_ws('; ',
                case when len(missing_fields) > 0
                     then 'missing: ' || array_to_string(missing_fields, ', ') end,
                case when len(ill_typed_fields) > 0
                     then 'ill-typed: ' || array_to_string(ill_typed_fields, ', ') end) end as detail,
            case when origin_lat is not null or dest_lat is not null or device is not null
                 then json_object('origin_lat', origin_lat, 'origin_lon', origin_lon,
                                  'dest_lat', dest_lat, 'dest_lon', dest_lon,
                                  'device', case when length(device) > {MAX_DEVICE}
                                                 then 'sha256:' || sha256(device) else device end)::varchar
            end as extra,
            substr(sha256(concat_ws(chr(31), platform, record_id, coalesce(pseudonym, keyed),
                scene, region, coalesce(start_ms::varchar, start_raw),
                coalesce(end_ms::varchar, end_raw), coalesce(amount_milli::varchar, amount_raw),
                material, ref, origin_lat::varchar, origin_lon::varchar, dest_lat::varchar,
                dest_lon::varchar, device)), 1, 32) as digest,
            case when start_ms is not null
                 then (to_timestamp((start_ms + {china_time.OFFSET_MS}) / 1000)::date)
            end as day_cn
        from checked
        -- Joins do not keep the input's order on large inputs: receive order is file order.
        order by row
        """

    def _quantify(self, normal: pa.Table) -> pa.Table:
        """Compute the unit quantification of every distinct (scene, region, material, period of
        the methodology catalogue) among valid records."""
        valid = normal.filter(pc.equal(pc.list_value_length(normal.column("reasons")), 0))
        names = ("scene", "region", "material", "day_cn")
        distinct = valid.group_by(list(names)).aggregate([])
        combos = zip(*(distinct.column(n).to_pylist() for n in names), strict=True)
        keys, scenes, regions_, materials, days = [], [], [], [], []
        methodologies, per_milli = [], []
        caps: dict[str, list[int | None]] = {
            "day_max_g": [],
            "day_max_count": [],
            "month_max_g": [],
            "month_max_count": [],
        }
        for scene, region, material, day in combos:
            found = self._quantified(scene, region, material, day)
            if found is None:
                continue
            keys.append(found.key)
            scenes.append(scene)
            regions_.append(region)
            materials.append(material)
            days.append(day)
            methodologies.append(found.unit.methodology)
            per_milli.append(found.unit.reduction_g / 1000)
            for name, value in self._caps(found).items():
                caps[name].append(value)
        return pa.table(
            {
                "scene": pa.array(scenes, pa.string()),
                "region": pa.array(regions_, pa.string()),
                "material": pa.array(materials, pa.string()),
                "day_cn": pa.array(days, pa.date32()),
                "quant_key": pa.array(keys, pa.string()),
                "methodology": pa.array(methodologies, pa.string()),
                "g_per_milli": pa.array(per_milli, pa.decimal128(38, 12)),
                **{k: pa.array(v, pa.int64()) for k, v in caps.items()},
            }
        )

    def _quantified(self, scene: str, region: str, material: str, day: date) -> Quantified | None:
        # The choice of methodology only changes on the catalogue's boundary dates, so one
        # calculation serves every day of a period.
        period = sum(1 for b in self.boundaries if b <= day)
        cache_key = (scene, region, material, period)
        if cache_key not in self.quantified:
            try:
                unit = self.catalogue.quantify(scene, region, material, day)
            except FactorNotFoundError:
                unit = None
            with self._lock:
                self.quantified[cache_key] = (
                    None if unit is None else Quantified(quantification_key(unit), unit)
                )
        return self.quantified[cache_key]

    def quantify(self, values: Iterable[tuple[str, str, str, date]]) -> None:
        """Quantify these (scene, region, material, China day) of valid records, as preparing
        them would: their calculations are then among `units()`."""
        for scene, region, material, day in values:
            self._quantified(scene, region, material, day)

    def _caps(self, found: Quantified) -> dict[str, int | None]:
        """The caps of the methodology that quantified a record, for its scene."""
        rule = self.catalogue.get(found.unit.methodology).scenes[found.unit.scene]
        return caps_of(rule)._asdict()

    def units(self) -> dict[str, UnitQuantification]:
        """Every unit quantification used so far, by key."""
        with self._lock:
            return {q.key: q.unit for q in self.quantified.values() if q is not None}


_QUANTIFY_SQL = f"""
select n.*,
    q.quant_key, q.methodology,
    case when q.quant_key is not null
         then floor(n.amount_milli * q.g_per_milli)::bigint else 0 end as computed_g,
    q.day_max_g, q.day_max_count, q.month_max_g, q.month_max_count,
    case when len(n.reasons) = 0 and q.quant_key is null
         then ['{Reason.NO_METHODOLOGY}'] else n.reasons end as checks
from normal n
-- Only a valid record is quantified (a record failing a check earns nothing, and its receipt
-- names no methodology), whatever valid records share its values.
left join quant q
  on len(n.reasons) = 0 and q.scene = n.scene and q.region = n.region
 and q.material = n.material and q.day_cn = n.day_cn
order by n.row
"""


_NORMALISED = (
    "row", "platform", "record_id", "scene", "region", "kind", "material", "ref", "start_ms",
    "end_ms", "amount_milli", "pseudonym", "detail", "extra", "digest", "day_cn",
)  # fmt: skip


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(moment.astimezone(UTC).timestamp() * 1000)
