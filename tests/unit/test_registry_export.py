"""The registry's exports (`service.registry_export`): how a block of units, a batch and a
retirement become records with the Climate Action Data Trust (CADT) data model's field names,
that every record holds what the shipped JSON Schemas say, that CSV reads back into the same
records, and that docs/market.md lists every field with where its name comes from."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from puhui.adapters.methodology_files import load_catalogue
from puhui.domain import market
from puhui.service import registry_export as rx
from puhui.service.registry import BatchView, BlockView, RetirementView

ROOT = Path(__file__).resolve().parents[2]
CHINA = timezone(timedelta(hours=8))
SERIAL = "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10"
ACME = "91350100M000100Y43"
CERTIFICATE = "CR-00000001-99B7310A39"


def batch(**overrides: Any) -> BatchView:
    """Batch 1 of October 2026: five units, one in its buffer."""
    fields: dict[str, Any] = {
        "id": 1, "serial": f"{SERIAL}-1-5", "exchange": "BJ", "methodology": "cn-common@1.0.0",
        "region": "51", "vintage": "2026-10", "units": 5, "buffer_units": 1, "buffer_bp": 500,
        "first": 1, "last": 5, "leaves": 250, "root": "70" * 32,
        "certified_at": datetime(2026, 11, 20, 9, 30, tzinfo=CHINA), "drawn_g": 20_000,
        "shortfall_g": 0,
        "held": {"exchange": 1, "company": 1, "buffer": 0, "retired": 2, "cancelled": 1},
    }  # fmt: skip
    return BatchView(**{**fields, **overrides})


def block(first: int, last: int, holder: str, **overrides: Any) -> BlockView:
    company = holder in ("company", "retired")
    fields: dict[str, Any] = {
        "serial": f"{SERIAL}-{first}-{last}", "batch": f"{SERIAL}-1-5", "first": first,
        "last": last, "units": last - first + 1, "holder": holder,
        "company": ACME if company else None, "company_name": "Acme 有限公司" if company else None,
        "certificate": CERTIFICATE if holder == "retired" else None,
    }  # fmt: skip
    return BlockView(**{**fields, **overrides})


def retirement(**overrides: Any) -> RetirementView:
    fields: dict[str, Any] = {
        "certificate": CERTIFICATE, "company": ACME, "company_name": "Acme 有限公司",
        "units": 2, "beneficiary": "Acme 有限公司", "purpose": "2026 ESG report",
        "at": datetime(2026, 11, 21, 8, 0, 5, tzinfo=CHINA), "serials": [f"{SERIAL}-1-2"],
    }  # fmt: skip
    return RetirementView(**{**fields, **overrides})


def units() -> list[dict[str, Any]]:
    """The blocks of batch 1: retired, held by Acme, by the exchange, cancelled."""
    return [
        rx.unit_record(block(1, 2, "retired"), batch(), "2026 ESG report", "福建省"),
        rx.unit_record(block(3, 3, "company"), batch(), None, "福建省", "https://x.example/"),
        rx.unit_record(block(4, 4, "exchange"), batch(), None, None),
        rx.unit_record(block(5, 5, "cancelled"), batch(), None, None),
    ]


@pytest.mark.parametrize("what", list(rx.What))
def test_each_schema_is_a_valid_draft_2020_12_schema_whose_fields_are_all_required(
    what: rx.What,
) -> None:
    schema = rx.schema(what)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    record = rx.record_schema(what)
    assert record["required"] == list(record["properties"])
    assert record["additionalProperties"] is False
    assert set(rx.origins(what).values()) <= {"cadt", "cadt-v2", "puhui"}


def test_a_block_of_units_becomes_a_cadt_unit_record() -> None:
    retired, held, unsold, cancelled = units()
    assert retired["serialNumberBlock"] == f"{SERIAL}-1-2"
    assert (retired["unitBlockStart"], retired["unitBlockEnd"], retired["unitCount"]) == (
        "1", "2", 2
    )  # fmt: skip
    assert (retired["unitStatus"], retired["unitStatusReason"]) == ("Retired", "2026 ESG report")
    assert (retired["unitOwner"], retired["ownerUscc"]) == ("Acme 有限公司", ACME)
    assert retired["retirementCertificate"] == CERTIFICATE
    assert retired["inCountryJurisdictionOfOwner"] == "福建省"
    assert retired["issuanceId"] == f"{SERIAL}-1-5"
    assert retired["vintageYear"] == 2026
    assert retired["vintage"] == "2026-10"
    assert retired["unitRegistryLink"] == f"/v1/registry/batches/{SERIAL}-1-2"
    assert held["unitRegistryLink"] == f"https://x.example/v1/registry/batches/{SERIAL}-3-3"
    assert (held["unitStatus"], held["unitStatusReason"], held["holder"]) == (
        "Held", None, "company"
    )  # fmt: skip
    # The exchange's units (not sold yet) are held by the exchange, named as the marketplace.
    assert (unsold["unitStatus"], unsold["unitOwner"], unsold["ownerUscc"]) == (
        "Held", "北京绿色交易所", None
    )  # fmt: skip
    assert unsold["marketplace"] == "北京绿色交易所"
    assert (cancelled["unitStatus"], cancelled["unitStatusReason"]) == (
        "Cancelled", rx.CANCELLED_REASON
    )  # fmt: skip
    buffer = rx.unit_record(block(5, 5, "buffer"), batch(), None, None)
    assert (buffer["unitStatus"], buffer["unitStatusReason"]) == ("Buffer", None)


def test_the_serial_number_pattern_reads_a_blocks_first_and_last_number() -> None:
    found = re.fullmatch(rx.SERIAL_NUMBER_PATTERN, "CN-PH-SZ-CN-PUBLIC-TRANSIT.V1.2.0-2027-01-9-12")
    assert found is not None
    assert found.groups() == ("9", "12")


def test_a_batch_becomes_an_issuance_record() -> None:
    record = rx.issuance_record(batch())
    assert record["id"] == f"{SERIAL}-1-5"
    assert (record["startDate"], record["endDate"]) == ("2026-10-01", "2026-10-31")
    assert record["verificationReportDate"] == "2026-11-20T01:30:00Z"  # 09:30 in China
    assert record["verificationBody"] == "北京绿色交易所"
    assert "cn-common@1.0.0" in record["verificationApproach"]
    assert (record["unitsIssued"], record["bufferUnits"], record["bufferShareBp"]) == (5, 1, 500)
    assert (record["firstUnit"], record["lastUnit"]) == (1, 5)
    assert (record["unitsRetired"], record["unitsCancelled"]) == (2, 1)
    assert (record["bufferDrawnGrams"], record["shortfallGrams"]) == (20_000, 0)
    february = rx.issuance_record(batch(vintage="2028-02", serial="CN-PH-BJ-X.V1-2028-02-6-6"))
    assert february["endDate"] == "2028-02-29"


def test_a_retirement_becomes_a_retirement_record() -> None:
    record = rx.retirement_record(retirement(), "福建省")
    assert record == {
        "retirementCertificate": CERTIFICATE,
        "unitStatus": "Retired",
        "unitCount": 2,
        "unitStatusDate": "2026-11-21T00:00:05Z",
        "unitRetirementBeneficiary": "Acme 有限公司",
        "unitStatusReason": "2026 ESG report",
        "unitOwner": "Acme 有限公司",
        "ownerUscc": ACME,
        "countryJurisdictionOfOwner": "China",
        "inCountryJurisdictionOfOwner": "福建省",
        "serialNumberBlocks": [f"{SERIAL}-1-2"],
    }


def examples() -> dict[rx.What, list[dict[str, Any]]]:
    return {
        rx.What.UNITS: units(),
        rx.What.ISSUANCES: [rx.issuance_record(batch())],
        rx.What.RETIREMENTS: [
            rx.retirement_record(retirement(), None),
            rx.retirement_record(
                retirement(serials=[f"{SERIAL}-3-3", "CN-PH-BJ-CN-COMMON.V1.0.0-2026-11-6-9"]),
                "福建省",
            ),
        ],
    }


@pytest.mark.parametrize("what", list(rx.What))
def test_records_hold_what_the_schema_says_in_its_order(what: rx.What) -> None:
    records = examples()[what]
    jsonschema.validate(records, rx.schema(what))
    for record in records:
        assert list(record) == rx.fields(what)


@pytest.mark.parametrize("what", list(rx.What))
def test_csv_reads_back_into_the_same_records(what: rx.What) -> None:
    records = examples()[what]
    text = rx.render(what, rx.Format.CSV, records)
    assert text.splitlines()[0] == ",".join(rx.fields(what))
    assert rx.from_csv(what, text) == records
    assert rx.render(what, rx.Format.JSON, records).endswith("\n")


def test_a_text_a_spreadsheet_would_run_is_quoted_in_csv_and_read_back_as_it_was() -> None:
    """A purpose or a name starting with =, +, -, @ (or the quote itself) is written after a
    single quote, so that a spreadsheet shows it instead of running it."""
    texts = ['=HYPERLINK("http://x")', "+1", "-1", "@SUM(A1)", "'quoted", "plain, with comma"]
    records = [
        rx.retirement_record(retirement(purpose=text, beneficiary=text), None) for text in texts
    ]
    written = rx.to_csv(rx.What.RETIREMENTS, records)
    assert ',"\'=HYPERLINK(""http://x"")",' in written  # quoted by CSV: it has quotes
    assert ",'+1,'+1," in written
    assert ",''quoted,''quoted," in written
    assert rx.from_csv(rx.What.RETIREMENTS, written) == records
    jsonschema.validate(records, rx.schema(rx.What.RETIREMENTS))


def test_a_csv_of_another_export_is_refused() -> None:
    text = rx.to_csv(rx.What.ISSUANCES, examples()[rx.What.ISSUANCES])
    with pytest.raises(ValueError, match="header"):
        rx.from_csv(rx.What.UNITS, text)


def test_a_companys_province_is_read_from_its_code() -> None:
    app: Any = SimpleNamespace(catalogue=load_catalogue())
    assert rx.province_of(app, ACME) == "福建省"  # 350100: Fuzhou
    assert rx.province_of(app, "91110108MA01ABCD0B") == "北京市"
    assert rx.province_of(app, "91100000MA01ABCD0B") is None  # the national authority


def test_a_record_that_breaks_the_schema_is_refused_by_it() -> None:
    [record] = [rx.issuance_record(batch())]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**record, "merkleRoot": "not hex"}], rx.schema(rx.What.ISSUANCES))
    unit = units()[0]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**unit, "unitStatus": "Sold"}], rx.schema(rx.What.UNITS))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**unit, "extra": 1}], rx.schema(rx.What.UNITS))


ORIGIN = {"cadt": "CADT", "cadt-v2": "CADT v2", "puhui": "puhui"}


@pytest.mark.parametrize("what", list(rx.What))
def test_docs_list_every_field_with_where_its_name_comes_from(what: rx.What) -> None:
    text = (ROOT / "docs" / "market.md").read_text(encoding="utf-8")
    section = text.split(f"### Export `{what.value}`", 1)[1].split("\n### ", 1)[0]
    for name, origin in rx.origins(what).items():
        assert f"| `{name}` | {ORIGIN[origin]} |" in section, name


def test_moments_are_written_in_utc() -> None:
    at = datetime(2027, 1, 1, 7, 59, 59, tzinfo=CHINA)
    record = rx.retirement_record(retirement(at=at), None)
    assert record["unitStatusDate"] == "2026-12-31T23:59:59Z"
    assert datetime.fromisoformat(record["unitStatusDate"]) == at.astimezone(UTC)


def test_the_worked_proof_example_in_the_docs_is_what_the_code_computes() -> None:
    """docs/market.md's three leaves, their hashes, the node, the root and the audit paths; and
    its Python check holds for each leaf and fails once a gram is changed."""
    text = (ROOT / "docs" / "market.md").read_text(encoding="utf-8")
    data = [
        market.leaf("amap", "r0-0", 20000),
        market.leaf("amap", "r0-1", 20000),
        market.leaf("aihuishou", "回收-7", 350),
    ]
    hashes = [market.leaf_hash(d) for d in data]
    root = market.merkle_root(hashes)
    for d, h in zip(data, hashes, strict=True):
        assert f"| `{d.decode()}` | `{h.hex()}` |" in text
    node = hashlib.sha256(b"\x01" + hashes[0] + hashes[1]).hexdigest()
    assert f"= `{node}`" in text
    assert f"`{root.hex()}`" in text
    assert f"The third leaf is {len(data[2])} bytes" in text
    snippet = text.split("The same check in Python", 1)[1].split("```python\n", 1)[1]
    scope: dict[str, Any] = {}
    exec(snippet.split("```", 1)[0], scope)  # noqa: S102 - the documentation's own example
    for index, d in enumerate(data):
        leaf = json.loads(d)
        proof = {
            "leaf": leaf,
            "leaf_index": index,
            "tree_size": 3,
            "path": [p.hex() for p in market.inclusion_proof(hashes, index)],
        }
        assert scope["holds"](proof, root.hex()), index
        forged = {**proof, "leaf": {**leaf, "grams": leaf["grams"] + 1}}
        assert not scope["holds"](forged, root.hex()), index
