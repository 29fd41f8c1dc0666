"""The exchange runs its carbon market from the command line, on SQLite and PostgreSQL: ten
citizens in Chengdu who take part (the `certify` scope) recycled paper in October 2026; their
credits are certified into a batch of units, a company buys three and retires two for its ESG
report, the registry exports validate against their schemas, a citizen's credit is proved to be
in the batch offline, and the ledger verifies. No citizen's number is ever printed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.domain.consent import Scope
from puhui.service import consent, queries, registry_export
from tests.builders import event, write_jsonl

PHONES = [f"1380013800{n}" for n in range(10)]
ACME, BETA = "91350100M000100Y43", "91110108MA01ABCD0B"
SERIAL = "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10"

# Each test runs `puhui` a dozen to forty times.
pytestmark = pytest.mark.slow


def recycled(phones: list[str]) -> list[dict[str, Any]]:
    """40 deliveries of 400 kg of paper each in October (the daily cap credits 20 kg a day)."""
    return [
        event(f"r{c}-{i}", subject=phone, quantity="400",
              start=f"2026-10-{1 + i % 28:02d}T10:{i % 60:02d}:00+08:00")
        for c, phone in enumerate(phones) for i in range(40)
    ]  # fmt: skip


def taking_part(cli: Any, phones: list[str]) -> None:
    """The citizens grant amap the `certify` scope (as its consent page would record it)."""
    app = bootstrap(Settings.load(cli.env["PUHUI_DATABASE_URL"], cli.env["PUHUI_KEY_FILE"]))
    try:
        for phone in phones:
            pseudonym = queries.pseudonym_of(app, phone)
            consent.grant(app, pseudonym, "amap", frozenset({Scope.CERTIFY}), 90)
    finally:
        app.close()


def failing(cli: Any, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*cli.argv, *args], capture_output=True, text=True, env=cli.env, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_an_exchange_certifies_sells_and_retires_units(cli: Any, tmp_path: Path) -> None:
    said: list[str] = []

    def run(*args: str) -> str:
        said.append(cli(*args))
        return said[-1]

    run("platform", "add", "amap")
    run("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "a.jsonl", recycled(PHONES))))
    taking_part(cli, PHONES)

    certified = run(
        "market", "certify", "--period", "2026-10", "--methodology", "cn-common@1.0.0",
        "--region", "51", "--key", "october",
    )  # fmt: skip
    assert "certified 280 credits of 10 citizens: 5,600,000 g CO2e" in certified
    assert f"batch {SERIAL}-1-5: 5 units, 1 in its buffer" in certified  # 5 % of 5, rounded up
    assert "600,000 g wait in the pool" in certified
    again = run(
        "market", "certify", "--period", "2026-10", "--methodology", "cn-common@1.0.0",
        "--region", "51", "--key", "october",
    )  # fmt: skip
    assert "(already done: the first answer)" in again

    run("company", "add", ACME.lower(), "--name", "Acme 有限公司")
    run("company", "add", BETA, "--name", "Beta [bold]北京[/bold]")
    sold = run("market", "sell", ACME, "--units", "3", "--price", "68.50", "--key", "sale-1")
    assert f"sold 3 units to {ACME} at 68.50 CNY a unit: {SERIAL}-1-3" in sold
    html, pdf = tmp_path / "cert.html", tmp_path / "cert.pdf"
    retired = run(
        "market", "retire", ACME, "--units", "2", "--beneficiary", "Acme 有限公司",
        "--purpose", "2026 ESG report", "--key", "esg-2026", "--html", str(html),
        "--pdf", str(pdf),
    )  # fmt: skip
    found = re.search(r"certificate (CR-\d{8}-[0-9A-F]{10})", retired)
    assert found, retired
    certificate = found.group(1)
    assert f"retired 2 units: {SERIAL}-1-2" in retired
    assert certificate in html.read_text(encoding="utf-8")
    assert pdf.read_bytes().startswith(b"%PDF-")
    verified = run("certificate", "show", certificate)
    assert f"{certificate}: retirement of 2 certified units by {ACME}" in verified
    assert "verified" in verified
    assert f"{SERIAL}-1-2" in verified
    forged = certificate[:-1] + ("0" if certificate[-1] != "0" else "1")
    assert "no retirement certificate" in failing(cli, "certificate", "show", forged).stderr
    moved = run("market", "transfer", ACME, BETA, "--units", "1", "--key", "gift-1")
    assert f"{ACME} gave 1 unit to {BETA}: {SERIAL}-3-3" in moved

    listing = run("market", "retirements")
    assert certificate in listing
    assert "2026 ESG report" in listing
    acme = run("company", "show", ACME)
    assert "holds 0 units; retired 2 units" in acme
    assert f"{SERIAL}-1-2" in acme
    assert "Beta [bold]北京[/bold]" in run("company", "list")  # a name is data, never markup
    batches = json.loads(run("market", "batches", "--json"))
    [batch] = batches["batches"]
    assert batch["held"] == {
        "exchange": 1, "company": 1, "buffer": 1, "retired": 2, "cancelled": 0, "abroad": 0
    }  # fmt: skip
    assert batches["pools"] == [{"pool": "pool:cn-common@1.0.0:51", "grams": 600_000}]
    assert "Merkle root " + batch["root"] in run("market", "batch", f"{SERIAL}-4-4")
    assert "API secret: " in run("company", "key", BETA)

    # The registry's exports, as JSON and as CSV, hold what their schemas say.
    for what in registry_export.What:
        exported = {}
        for form in registry_export.Format:
            target = tmp_path / f"{what}.{form}"
            run("registry", "export", "--what", what, "--format", form, "--out", str(target),
                "--registry-url", "https://puhui.example.cn")  # fmt: skip
            text = target.read_text(encoding="utf-8")
            records = json.loads(text) if form == "json" else registry_export.from_csv(what, text)
            jsonschema.validate(records, registry_export.schema(what))
            exported[form] = records
        assert exported["json"] == exported["csv"]
    units = json.loads((tmp_path / "units.json").read_text(encoding="utf-8"))
    assert sum(u["unitCount"] for u in units) == 5
    [gone] = [u for u in units if u["unitStatus"] == "Retired"]
    assert gone["retirementCertificate"] == certificate
    assert gone["unitStatusReason"] == "2026 ESG report"
    assert gone["inCountryJurisdictionOfOwner"] == "福建省"  # 350100: Fuzhou
    assert {u["unitStatus"] for u in units} == {"Held", "Retired", "Buffer"}
    [retirement] = json.loads((tmp_path / "retirements.json").read_text(encoding="utf-8"))
    assert retirement["serialNumberBlocks"] == [f"{SERIAL}-1-2"]
    [issuance] = json.loads((tmp_path / "issuances.json").read_text(encoding="utf-8"))
    assert (issuance["startDate"], issuance["endDate"]) == ("2026-10-01", "2026-10-31")
    assert issuance["merkleRoot"] == batch["root"]

    # A citizen's credit is in the batch: its proof holds offline, and fails once altered.
    history = run("account", "show", PHONES[0], "--limit", "5")
    entry = re.search(r"^\s*(\d+)\s+\S+ \S+\s+\S+\s+credit\s", history, re.MULTILINE)
    assert entry, history
    proof = tmp_path / "proof.json"
    shown = run("proof", "show", entry.group(1), "--subject", PHONES[0], "--out", str(proof))
    assert f"in batch {SERIAL}-1-5" in shown
    assert "✓ proof 1: credit amap/r0-" in run("proof", "verify", str(proof))
    assert "✓" in run("proof", "verify", str(proof), "--root", batch["root"])
    documents = json.loads(proof.read_text(encoding="utf-8"))
    documents[0]["leaf"]["grams"] += 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(documents), encoding="utf-8")
    refused = failing(cli, "proof", "verify", str(forged))
    assert "✗ proof 1: the credit, with this path, does not give the batch's root" in refused.stderr

    # Refusals are one clear line and exit 1; what was typed is never repeated.
    assert (
        "holding has 1"
        in failing(
            cli, "market", "sell", ACME, "--units", "2", "--price", "68.50", "--key", "sale-2"
        ).stderr
    )
    bad = failing(cli, "company", "show", "[red]91350100M000100Y44")
    assert "[red]" not in bad.stderr
    assert "unified social credit code" in bad.stderr
    assert (
        "no credit" in failing(cli, "proof", "show", entry.group(1), "--subject", PHONES[1]).stderr
    )

    assert "ledger sound" in run("ledger", "verify")
    for phone in PHONES:
        assert all(phone not in text for text in said), phone


def test_a_reversed_credit_is_drawn_from_the_buffer_and_a_shortfall_shown(
    cli: Any, tmp_path: Path
) -> None:
    """Without a buffer, a reversed certified credit of a batch is a shortfall."""
    phones = PHONES[:2]
    cli("platform", "add", "amap")
    cli("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "a.jsonl", recycled(phones))))
    taking_part(cli, phones)
    certified = cli(
        "market", "certify", "--period", "2026-10", "--methodology", "cn-common@1.0.0",
        "--region", "5101", "--buffer-bp", "0", "--key", "october",
    )  # fmt: skip
    assert f"batch {SERIAL}-1-1: 1 unit, 0 in its buffer" in certified
    assert "no shortfall" in cli("market", "shortfalls")
    history = cli("account", "show", phones[0], "--limit", "40")
    oldest = re.findall(r"^\s*(\d+)\s+\S+ \S+\s+\S+\s+credit\s", history, re.MULTILINE)[-1]
    reversed_ = cli("market", "reverse", oldest, "--reason", "made up", "--key", "rv-1")
    assert f"20,000 g from {SERIAL}-1-1: 0 g drawn, 20,000 g short" in reversed_
    shown = cli("market", "shortfalls")
    assert "shortfall in all: 20,000 g" in shown
    assert json.loads(cli("market", "shortfalls", "--json"))["shortfall_g"] == 20_000
    target = tmp_path / "issuances.json"
    cli("registry", "export", "--what", "issuances", "--out", str(target))
    [issuance] = json.loads(target.read_text(encoding="utf-8"))
    jsonschema.validate([issuance], registry_export.schema(registry_export.What.ISSUANCES))
    assert issuance["shortfallGrams"] == 20_000
    again = failing(cli, "market", "reverse", oldest, "--reason", "made up", "--key", "rv-2")
    assert f"entry {oldest} is reversed already" in again.stderr
    assert "ledger sound" in cli("ledger", "verify")
