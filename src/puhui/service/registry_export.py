"""Exports of the public registry for other registries and auditors: `units` (one record per
block of serial numbers, who holds it and its status), `issuances` (one per batch) and
`retirements` (one per retirement), as JSON or CSV (docs/market.md).

Field names follow the Climate Action Data Trust (CADT) data model where one applies, so that a
CADT node or any tool that reads its exports can take the records as they are; the others are
puhui's own. Each export has a JSON Schema (draft 2020-12) shipped in `puhui/schemas/`, whose
`x-origin` says where each field's name comes from (`cadt`, `cadt-v2` or `puhui`), and whose
order of properties is the order of the CSV columns.

Like the registry, an export names companies, serial numbers and receipts, never a citizen.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from puhui.bootstrap import App
from puhui.domain import market as rules
from puhui.service import registry
from puhui.service.registry import BatchView, BlockView, RetirementView


class What(StrEnum):
    """What an export holds."""

    UNITS = "units"
    ISSUANCES = "issuances"
    RETIREMENTS = "retirements"


class Format(StrEnum):
    """How an export is written."""

    JSON = "json"
    CSV = "csv"


# CADT's unit status for each holder of a block.
UNIT_STATUS = {
    "exchange": "Held",
    "company": "Held",
    "buffer": "Buffer",
    "retired": "Retired",
    "cancelled": "Cancelled",
    "abroad": "Exported",
}
CANCELLED_REASON = "buffer units no longer backed by grams after reversals of certified credits"
# The two groups are a serial number block's first and last unit numbers (CADT reads a block's
# start and end with such a pattern).
SERIAL_NUMBER_PATTERN = r"^CN-PH-[A-Z]{2}-.+-[0-9]{4}-[0-9]{2}-([0-9]+)-([0-9]+)$"
COUNTRY = "China"
UNIT_TYPE = "Avoidance"
# In CSV, a text that a spreadsheet would take for a formula (or that starts with the quote
# itself) is written after a single quote, which reading the CSV back takes off.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


@cache
def schema(what: What) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an export: an array of its records."""
    text = (resources.files("puhui") / "schemas" / f"{What(what).value}.schema.json").read_text(
        encoding="utf-8"
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def record_schema(what: What) -> dict[str, Any]:
    """The schema of one record of an export."""
    found: dict[str, Any] = schema(what)["$defs"][_RECORD[What(what)]]
    return found


def fields(what: What) -> list[str]:
    """The fields of an export's records, in the order of its CSV columns."""
    return list(record_schema(what)["properties"])


def origins(what: What) -> dict[str, str]:
    """Where each field's name comes from: `cadt`, `cadt-v2` or `puhui`."""
    return {name: p["x-origin"] for name, p in record_schema(what)["properties"].items()}


# --- the records ------------------------------------------------------------------------------


def records(app: App, what: What, registry_url: str | None = None) -> list[dict[str, Any]]:
    """An export's records, as the registry holds them now."""
    what = What(what)
    if what is What.UNITS:
        return units(app, registry_url)
    if what is What.ISSUANCES:
        return [issuance_record(b) for b in registry.batches(app)]
    return [retirement_record(r, province_of(app, r.company)) for r in registry.retirements(app)]


def units(app: App, registry_url: str | None = None) -> list[dict[str, Any]]:
    """One record per block of serial numbers, lowest numbers first."""
    batches = {b.serial: b for b in registry.batches(app)}
    purposes = {r.certificate: r.purpose for r in registry.retirements(app)}
    return [
        unit_record(
            block,
            batches[block.batch],
            purposes.get(block.certificate) if block.certificate else None,
            province_of(app, block.company) if block.company else None,
            registry_url,
        )
        for block in registry.blocks(app)
    ]


def unit_record(
    block: BlockView,
    batch: BatchView,
    purpose: str | None,
    province: str | None,
    registry_url: str | None = None,
) -> dict[str, Any]:
    """A block of units as the units export has it: `purpose` is its retirement's (retired
    units), `province` its company's."""
    exchange = rules.EXCHANGES.get(batch.exchange, batch.exchange)
    reason = purpose if block.holder == "retired" else None
    if block.holder == "cancelled":
        reason = CANCELLED_REASON
    if block.holder == "abroad":
        reason = f"in the registry of the common mechanism's node {block.node}"
    return {
        "serialNumberBlock": block.serial,
        "unitBlockStart": str(block.first),
        "unitBlockEnd": str(block.last),
        "unitCount": block.units,
        "vintageYear": int(batch.vintage[:4]),
        "unitType": UNIT_TYPE,
        "unitStatus": UNIT_STATUS[block.holder],
        "unitStatusReason": reason,
        "unitOwner": block.company_name or exchange,
        "countryJurisdictionOfOwner": COUNTRY,
        "inCountryJurisdictionOfOwner": province,
        "issuanceId": batch.serial,
        "unitRegistryLink": _link(registry_url, block.serial),
        "marketplace": exchange,
        "correspondingAdjustmentDeclaration": "Not Required",
        "correspondingAdjustmentStatus": "Not Applicable",
        "serialNumberPattern": SERIAL_NUMBER_PATTERN,
        "holder": block.holder,
        "ownerUscc": block.company,
        "retirementCertificate": block.certificate,
        "vintage": batch.vintage,
        "methodology": batch.methodology,
        "region": batch.region,
        "exchange": batch.exchange,
    }


def issuance_record(batch: BatchView) -> dict[str, Any]:
    """A batch as the issuances export has it."""
    year, month = (int(part) for part in batch.vintage.split("-"))
    last_day = calendar.monthrange(year, month)[1]
    return {
        "id": batch.serial,
        "startDate": f"{batch.vintage}-01",
        "endDate": f"{batch.vintage}-{last_day:02d}",
        "verificationApproach": (
            f"Each credit calculated by the exchange from a member platform's record with "
            f"methodology {batch.methodology}; the batch commits to its credits with a Merkle "
            f"root (RFC 9162) that inclusion proofs are checked against"
        ),
        "verificationReportDate": _moment(batch.certified_at),
        "verificationBody": rules.EXCHANGES.get(batch.exchange, batch.exchange),
        "vintage": batch.vintage,
        "methodology": batch.methodology,
        "region": batch.region,
        "exchange": batch.exchange,
        "unitsIssued": batch.units,
        "bufferUnits": batch.buffer_units,
        "bufferShareBp": batch.buffer_bp,
        "firstUnit": batch.first,
        "lastUnit": batch.last,
        "merkleRoot": batch.root,
        "merkleLeaves": batch.leaves,
        "unitsExchange": batch.held.get("exchange", 0),
        "unitsCompanies": batch.held.get("company", 0),
        "unitsBuffer": batch.held.get("buffer", 0),
        "unitsRetired": batch.held.get("retired", 0),
        "unitsCancelled": batch.held.get("cancelled", 0),
        "bufferDrawnGrams": batch.drawn_g,
        "shortfallGrams": batch.shortfall_g,
    }


def retirement_record(retirement: RetirementView, province: str | None) -> dict[str, Any]:
    """A retirement as the retirements export has it; `province` is its company's."""
    return {
        "retirementCertificate": retirement.certificate,
        "unitStatus": "Retired",
        "unitCount": retirement.units,
        "unitStatusDate": _moment(retirement.at),
        "unitRetirementBeneficiary": retirement.beneficiary,
        "unitStatusReason": retirement.purpose,
        "unitOwner": retirement.company_name,
        "ownerUscc": retirement.company,
        "countryJurisdictionOfOwner": COUNTRY,
        "inCountryJurisdictionOfOwner": province,
        "serialNumberBlocks": list(retirement.serials),
    }


def province_of(app: App, uscc: str) -> str | None:
    """The province a unified social credit code was registered in: its characters 3 to 8 are
    the GB/T 2260 code of the registering authority's place (None when it names no province
    puhui knows, e.g. 100000 for the national authority)."""
    division = uscc[2:8]
    if len(division) != 6 or not division.isdigit():
        return None
    found = app.catalogue.regions.get(division[:2] + "0000")
    return None if found is None else found.name


# --- JSON and CSV -----------------------------------------------------------------------------


def render(what: What, form: Format, found: list[dict[str, Any]]) -> str:
    """An export's records as the text of a JSON or CSV file."""
    if Format(form) is Format.JSON:
        return json.dumps(found, ensure_ascii=False, indent=2) + "\n"
    return to_csv(what, found)


def to_csv(what: What, found: list[dict[str, Any]]) -> str:
    """Records as CSV: a header of the field names, then a row a record; null is an empty
    cell, a list its items separated by spaces."""
    names = fields(what)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for record in found:
        writer.writerow([_cell(record[name]) for name in names])
    return out.getvalue()


def from_csv(what: What, text: str) -> list[dict[str, Any]]:
    """Read a CSV export back into the records it was written from (each field typed as its
    schema says).

    Raises:
        ValueError: its header is not the export's fields, or a cell is not of its field's type.
    """
    names = fields(what)
    kinds = {name: _kind(what, name) for name in names}
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != names:
        raise ValueError(f"the header is not that of the {What(what).value} export")
    found = []
    for row in rows[1:]:
        if len(row) != len(names):
            raise ValueError("a row does not have a cell for each field")
        found.append(
            {name: _value(cell, kinds[name]) for name, cell in zip(names, row, strict=True)}
        )
    return found


# --- helpers ----------------------------------------------------------------------------------

_RECORD = {What.UNITS: "unit", What.ISSUANCES: "issuance", What.RETIREMENTS: "retirement"}


def _link(registry_url: str | None, serial: str) -> str:
    """Where the public registry shows a block with its batch (`GET /v1/registry/batches/…`
    takes any serial number block of a batch)."""
    return f"{(registry_url or '').rstrip('/')}/v1/registry/batches/{serial}"


def _moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return str(value)


def _kind(what: What, name: str) -> tuple[str, bool]:
    """A field's JSON type (`string`, `integer` or `array`) and whether it may be null."""
    prop = record_schema(what)["properties"][name]
    if "$ref" in prop:
        prop = schema(what)["$defs"][prop["$ref"].rsplit("/", 1)[1]]
    given = prop.get("type", "string")
    types = [given] if isinstance(given, str) else list(given)
    nullable = "null" in types
    return next(t for t in types if t != "null"), nullable


def _value(cell: str, kind: tuple[str, bool]) -> Any:
    typ, nullable = kind
    if cell == "" and nullable:
        return None
    if typ == "integer":
        return int(cell)
    if typ == "array":
        return cell.split()
    if cell.startswith("'") and cell[1:].startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell
