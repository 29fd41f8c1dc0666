"""The carbon market from the command line (docs/market.md). `puhui company` registers the
companies that buy units, shows what each holds and issues its API credentials; `puhui market`
certifies citizens' credits into batches of units, sells, transfers, retires and reverses, and
lists batches, retirements and shortfalls; `puhui proof` writes the proof that a citizen's credit
is in a batch and checks one offline; `puhui registry export` writes the public registry as
JSON or CSV. Writes take an idempotency key (`--key`): sent again, the first answer. No
identifier of a citizen is ever printed."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Column, Table

from puhui.domain import china_time
from puhui.domain import market as rules
from puhui.domain.accounts import Outcome
from puhui.domain.errors import InputError
from puhui.entrypoints.cli.common import OPERATOR, Db, Key, KeyFile, application, err, out
from puhui.service import (
    admin,
    credentials,
    market,
    queries,
    registry,
    registry_export,
    retirement_certificates,
)
from puhui.service.registry import BatchView
from puhui.service.wallet.catalogue import check_code

company_app = typer.Typer(
    help="Companies that buy and retire units: add, list, show, key.", no_args_is_help=True
)
market_app = typer.Typer(
    help="The carbon market: certify, sell, transfer, retire, reverse; batches, retirements, "
    "shortfalls.",
    no_args_is_help=True,
)
proof_app = typer.Typer(
    help="Proofs that a citizen's credit is in a certified batch: show, verify.",
    no_args_is_help=True,
)
registry_app = typer.Typer(help="The public registry of certified units.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Uscc = Annotated[str, typer.Argument(help="The company's unified social credit code (18 chars).")]
Units = Annotated[int, typer.Option("--units", help="How many units (1 unit = 1 t CO2e).")]
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# The largest id a database column holds.
_MAX_ID = 2**63 - 1


# --- companies --------------------------------------------------------------------------------


@company_app.command("add")
def company_add(
    uscc: Uscc,
    name: Annotated[str, typer.Option("--name", help="The company's registered name.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Register a company by its unified social credit code (its check character is checked)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        code = _uscc(uscc)
        market.add_company(a, code, name)
    out.print(f"company {code} registered: {escape(name.strip())}")


@company_app.command("list")
def company_list(as_json: Json = False, db: Db = None, key_file: KeyFile = None) -> None:
    """Every company with the units it holds and has retired."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = registry.companies(a)
    if as_json:
        _json([_plain(c) for c in found])
        return
    table = _table("USCC", "name", "units held", "units retired", title=f"companies: {len(found)}")
    for column in table.columns[2:]:
        column.justify = "right"
    for c in found:
        table.add_row(c.uscc, escape(c.name), f"{c.held:,}", f"{c.retired:,}")
    out.print(table)


@company_app.command("show")
def company_show(
    uscc: Uscc, as_json: Json = False, db: Db = None, key_file: KeyFile = None
) -> None:
    """A company's holdings: the serial numbers it holds and has retired."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = registry.company(a, _uscc(uscc))
    if as_json:
        _json(_plain(found))
        return
    out.print(f"company {found.uscc}: {escape(found.name)}")
    out.print(f"holds {_units(found.held)}; retired {_units(found.retired)}")
    table = _table("serial numbers", "units", "status", "certificate", title="holdings")
    table.columns[1].justify = "right"
    for b in found.blocks:
        status = "held" if b.holder == "company" else b.holder
        table.add_row(b.serial, f"{b.units:,}", status, b.certificate or "")
    out.print(table)


@company_app.command("key")
def company_key(uscc: Uscc, db: Db = None, key_file: KeyFile = None) -> None:
    """Issue the company's API credentials (shown once); any key it had stops working at once."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        code = _uscc(uscc)
        issued = credentials.issue_company(a, code)
    out.print(f"company {code}")
    out.print(f"API key id: {issued.key_id}")
    out.print(f"API secret: {issued.secret}")
    out.print("The secret is shown only now: hand it to the company over a safe channel.")


# --- the market's writes ----------------------------------------------------------------------


@market_app.command("certify")
def market_certify(
    period: Annotated[str, typer.Option("--period", help="The month certified: YYYY-MM.")],
    methodology: Annotated[
        str, typer.Option("--methodology", help="The methodology version: id@version.")
    ],
    region: Annotated[
        str, typer.Option("--region", help="A GB/T 2260 code or prefix: 51, 5101 or 510100.")
    ],
    key: Key,
    buffer_bp: Annotated[
        int,
        typer.Option("--buffer-bp", help="The buffer share in basis points, rounded up to units."),
    ] = rules.DEFAULT_BUFFER_BP,
    programme: Annotated[
        str | None,
        typer.Option("--programme", help="Give the citizens this programme's points for it."),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Certify a month's credits of the citizens who take part (the `certify` scope) into the
    pool of the methodology and region, and issue the pool's whole units as a batch."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        if programme is not None:
            check_code(programme)  # named in a refusal: never markup
        done = market.certify(
            a, period, methodology, region, key, OPERATOR, buffer_bp=buffer_bp, programme=programme
        )
    r = done.result
    out.print(
        f"certified {r['credits']:,} credits of {r['citizens']:,} citizens: "
        f"{r['certified_g']:,} g CO2e" + (f"; {r['points']:,} points given" if r["points"] else "")
    )
    batch = r.get("batch")
    if batch:
        out.print(
            f"batch {batch['serial']}: {_units(batch['units'])}, {batch['buffer_units']:,} in "
            f"its buffer; {batch['leaves']:,} credits, Merkle root {batch['root']}"
        )
    else:
        out.print("no batch: the pool holds less than a whole unit (1 t CO2e)")
    out.print(f"{r['pool_g']:,} g wait in the pool for the next batch")
    _outcome(done)


@market_app.command("sell")
def market_sell(
    uscc: Uscc,
    units: Units,
    price: Annotated[str, typer.Option("--price", help="CNY a unit, e.g. 68.50.")],
    key: Key,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """The exchange sells units to a company, its lowest serial numbers first (the money is
    settled outside puhui)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        done = market.sell(a, _uscc(uscc), units, price, key, OPERATOR)
    r = done.result
    out.print(
        f"sold {_units(r['units'])} to {r['company']} at {r['unit_price_fen'] // 100}."
        f"{r['unit_price_fen'] % 100:02d} CNY a unit: {' '.join(r['serials'])}"
    )
    _outcome(done)


@market_app.command("transfer")
def market_transfer(
    uscc: Annotated[str, typer.Argument(help="The giving company's unified social credit code.")],
    to: Annotated[str, typer.Argument(help="The receiving company's unified social credit code.")],
    units: Units,
    key: Key,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """A company moves units it holds to another company, its lowest serial numbers first."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        done = market.transfer(a, _uscc(uscc), _uscc(to), units, key, OPERATOR)
    r = done.result
    out.print(f"{r['from']} gave {_units(r['units'])} to {r['to']}: {' '.join(r['serials'])}")
    _outcome(done)


@market_app.command("export")
def market_export(
    uscc: Annotated[str, typer.Argument(help="The giving company's unified social credit code.")],
    node: Annotated[
        str, typer.Option("--node", help="The node (exchange code) the receiving company is at.")
    ],
    to: Annotated[
        str, typer.Option("--to", help="The receiving company's unified social credit code.")
    ],
    name: Annotated[str, typer.Option("--name", help="The receiving company's name.")],
    units: Units,
    key: Key,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """A company sends units it holds to a company at another node of the common mechanism,
    its lowest serial numbers first: they leave this registry now, and reach the other node's
    when this node syncs with the registry (or come back, if the registry refuses)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        done = market.export(a, _uscc(uscc), node, _uscc(to), name, units, key, OPERATOR)
    r = done.result
    out.print(
        f"{r['from']} sent {_units(r['units'])} to {r['to']} at node {r['to_node']}: "
        f"{' '.join(r['serials'])} (transfers {', '.join(map(str, r['transfers']))})"
    )
    _outcome(done)


@market_app.command("retire")
def market_retire(
    uscc: Uscc,
    units: Units,
    beneficiary: Annotated[
        str, typer.Option("--beneficiary", help="On whose behalf the units are retired.")
    ],
    purpose: Annotated[str, typer.Option("--purpose", help='Why, e.g. "2026 ESG report".')],
    key: Key,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the certificate as an HTML page.")
    ] = None,
    pdf: Annotated[
        Path | None, typer.Option("--pdf", help="Also write the certificate as a PDF file.")
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """A company retires units it holds, for a beneficiary and a purpose, for good; the
    answer names the retirement's certificate."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        done = market.retire(a, _uscc(uscc), units, beneficiary, purpose, key, OPERATOR)
        certificate = str(done.result["certificate"])
        files: list[tuple[str, Path, bytes]] = []
        if html is not None or pdf is not None:
            found = retirement_certificates.find(a, certificate)
            if html is not None:
                files.append(("--html", html, retirement_certificates.html(found).encode()))
            if pdf is not None:
                files.append(("--pdf", pdf, retirement_certificates.pdf(found)))
    r = done.result
    out.print(
        f"{r['company']} retired {_units(r['units'])}: {' '.join(r['serials'])}; "
        f"certificate {certificate}"
    )
    _outcome(done)
    for option, path, data in files:
        _write(option, path, data, f"the units are retired (certificate {certificate}), but ")


@market_app.command("reverse")
def market_reverse(
    entry: Annotated[int, typer.Argument(help="The credit's ledger entry.", min=1, max=_MAX_ID)],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")],
    key: Key,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Reverse a certified credit found wrong: its grams come back from the pool or from its
    batches' buffers; what a buffer cannot cover is a shortfall (`puhui market shortfalls`)."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        done = market.reverse_credit(a, entry, reason, key, OPERATOR)
    for d in done.result["draws"]:
        where = d["batch"] or "the pool"
        line = f"{d['grams']:,} g from {where}: {d['drawn_g']:,} g drawn"
        if d.get("shortfall_g"):
            line += f", {d['shortfall_g']:,} g short"
        if d.get("units_cancelled"):
            line += f", {d['units_cancelled']:,} buffer unit(s) cancelled"
        out.print(line)
    _outcome(done)


# --- the market's reads -----------------------------------------------------------------------


@market_app.command("batches")
def market_batches(as_json: Json = False, db: Db = None, key_file: KeyFile = None) -> None:
    """Every batch, oldest first, with its units by holder, and what waits in each pool."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = registry.batches(a)
        pools = registry.reads(a).pool()
    if as_json:
        _json(
            {
                "batches": [_plain(b) for b in found],
                "pools": [{"pool": p["code"], "grams": int(p["grams"])} for p in pools],
            }
        )
        return
    table = _table(
        "id", "serial numbers", "certified (UTC+8)", "units", "exchange", "companies",
        "retired", "buffer", "cancelled", "shortfall g", title=f"batches: {len(found)}",
    )  # fmt: skip
    for column in table.columns[3:]:
        column.justify = "right"
    for b in found:
        table.add_row(
            str(b.id),
            b.serial,
            _china(b.certified_at),
            f"{b.units:,}",
            *(f"{b.held[h]:,}" for h in ("exchange", "company", "retired", "buffer", "cancelled")),
            f"{b.shortfall_g:,}",
        )
    out.print(table)
    for p in pools:
        out.print(f"{escape(p['code'])}: {int(p['grams']):,} g wait for the next batch")


@market_app.command("batch")
def market_batch(
    serial_or_id: Annotated[
        str, typer.Argument(help="The batch's id, its serial number or a serial range in it.")
    ],
    as_json: Json = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """One batch: what it certified, its Merkle root, and who holds which of its units."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = registry.batch(a, _batch_name(serial_or_id))
        blocks = registry.blocks(a, found.id)
    if as_json:
        _json({**_plain(found), "blocks": [_plain(k) for k in blocks]})
        return
    _print_batch(found)
    table = _table("serial numbers", "units", "holder", "company", "certificate", title="units")
    table.columns[1].justify = "right"
    for k in blocks:
        company = f"{k.company} {escape(k.company_name or '')}" if k.company else ""
        table.add_row(k.serial, f"{k.units:,}", k.holder, company, k.certificate or "")
    out.print(table)


@market_app.command("retirements")
def market_retirements(as_json: Json = False, db: Db = None, key_file: KeyFile = None) -> None:
    """Every retirement, latest first, with its certificate."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = registry.retirements(a)
    if as_json:
        _json([_plain(r) for r in found])
        return
    table = _table(
        "certificate", "retired (UTC+8)", "company", "units", "beneficiary", "purpose",
        "serial numbers", title=f"retirements: {len(found)}",
    )  # fmt: skip
    table.columns[3].justify = "right"
    for r in found:
        table.add_row(
            r.certificate,
            _china(r.at),
            f"{r.company} {escape(r.company_name)}",
            f"{r.units:,}",
            escape(r.beneficiary),
            escape(r.purpose),
            "\n".join(r.serials),
        )
    out.print(table)


@market_app.command("shortfalls")
def market_shortfalls(as_json: Json = False, db: Db = None, key_file: KeyFile = None) -> None:
    """What reversals of certified credits drew from batches' buffers, and what the buffers
    could not cover: the shortfalls the exchange answers for."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        batches = {b.id: b for b in registry.batches(a)}
        draws = [d for d in registry.reads(a).draws() if d["batch_id"] is not None]
    rows = [
        {
            "reversal": int(d["operation_id"]),
            "at": d["at"],
            "batch": batches[int(d["batch_id"])].serial,
            "grams": int(d["grams"]),
            "drawn_g": int(d["drawn_g"]),
            "shortfall_g": int(d["shortfall_g"]),
        }
        for d in draws
    ]
    total = sum(b.shortfall_g for b in batches.values())
    if as_json:
        _json({"shortfall_g": total, "draws": rows})
        return
    table = _table(
        "reversal", "at (UTC+8)", "batch", "grams", "drawn from its buffer g", "shortfall g",
        title="reversals drawn from batches' buffers, latest first",
    )  # fmt: skip
    for column in table.columns[3:]:
        column.justify = "right"
    for row in rows:
        table.add_row(
            str(row["reversal"]),
            _china(row["at"]),
            row["batch"],
            f"{row['grams']:,}",
            f"{row['drawn_g']:,}",
            f"{row['shortfall_g']:,}",
        )
    if rows:
        out.print(table)
    else:
        out.print("no reversal of a certified credit has drawn from a batch's buffer")
    for b in batches.values():
        if b.shortfall_g:
            out.print(f"{b.serial}: {b.shortfall_g:,} g not covered by its buffer")
    out.print(f"shortfall in all: {total:,} g" if total else "no shortfall")


# --- proofs -----------------------------------------------------------------------------------


@proof_app.command("show")
def proof_show(
    entry: Annotated[
        int,
        typer.Argument(
            help="The credit's ledger entry (`puhui account show`).", min=1, max=_MAX_ID
        ),
    ],
    subject: Annotated[
        str, typer.Option("--subject", help="The citizen's mobile or resident ID number.")
    ],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write the proofs to this file (JSON) instead of printing."),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Write the proofs that a citizen's credit is in certified batches: one for each batch
    its grams are in, each checked offline by `puhui proof verify`. The identifier is
    pseudonymised at once, never stored or printed."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        documents = registry.proofs(a, queries.pseudonym_of(a, subject), entry)
    text = json.dumps(documents, ensure_ascii=False, indent=2) + "\n"
    if out_file is None:
        typer.echo(text, nl=False)
        return
    _write("--out", out_file, text.encode())
    for d in documents:
        out.print(
            f"credit {entry}: {d['leaf']['grams']:,} g in batch {d['batch']}, leaf "
            f"{d['leaf_index']} of {d['tree_size']}, root {d['root']}"
        )
    out.print(f"{len(documents)} proof(s) written to {escape(str(out_file))}")


@proof_app.command("verify")
def proof_verify(
    file: Annotated[
        Path,
        typer.Argument(
            help="A proof (JSON), or a list of them, as `puhui proof show` writes.",
            exists=True,
            dir_okay=False,
        ),
    ],
    root: Annotated[
        str | None,
        typer.Option("--root", help="The batch's Merkle root as the registry publishes it (hex)."),
    ] = None,
) -> None:
    """Check a proof offline: the credit, hashed as docs/market.md says, with its audit path
    gives the batch's Merkle root (the one given with --root, else the proof's own). Exit 0
    when every proof in the file holds, 1 otherwise."""
    if root is not None and not _HEX64.fullmatch(root.strip()):
        _fail("--root is a Merkle root: 64 hexadecimal characters")
    expected = None if root is None else root.strip().lower()
    try:
        loaded = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        _fail("the file is not JSON: a proof is a JSON object, as `puhui proof show` writes")
    documents = loaded if isinstance(loaded, list) else [loaded]
    if not documents or not all(isinstance(d, dict) for d in documents):
        _fail("the file holds no proof: a proof is a JSON object, as `puhui proof show` writes")
    failed = False
    for number, document in enumerate(documents, 1):
        try:
            why = registry.check_proof(document, expected)
        except OverflowError:  # a number no index or size can be (JSON's 1e999)
            why = "not a proof: a field is missing or malformed"
        if why is not None:
            err.print(f"✗ proof {number}: {escape(why)}", highlight=False)
            failed = True
            continue
        leaf = document["leaf"]
        out.print(
            f"✓ proof {number}: credit {escape(str(leaf['platform']))}/"
            f"{escape(str(leaf['record_id']))} ({leaf['grams']:,} g) is in batch "
            f"{escape(str(document.get('batch', '')))}: leaf {document['leaf_index']} of "
            f"{document['tree_size']}, root {str(document['root']).lower()}",
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(1)
    if expected is None:
        out.print(
            "checked against the root each proof names: give --root with the root the registry "
            "publishes for the batch (`puhui market batch`, GET /v1/registry/batches/…) to know "
            "it is the registry's"
        )


# --- the registry -----------------------------------------------------------------------------


@registry_app.command("export")
def registry_export_command(
    what: Annotated[
        registry_export.What,
        typer.Option("--what", help="units (serial blocks), issuances (batches) or retirements."),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="The file to write.")],
    form: Annotated[
        registry_export.Format, typer.Option("--format", help="json or csv.")
    ] = registry_export.Format.JSON,
    registry_url: Annotated[
        str | None,
        typer.Option(
            "--registry-url",
            help="The exchange's public address (https://…), which the units' registry links "
            "start with.",
        ),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Write the registry's units, issuances or retirements with the field names of the
    Climate Action Data Trust (CADT) data model where one applies (docs/market.md); each
    export's JSON Schema is shipped in puhui/schemas/."""
    if registry_url is not None and not re.fullmatch(
        r"https?://[^\s/?#]+(/[^\s?#]*)?", registry_url
    ):
        _fail("--registry-url is an http(s) address, e.g. https://puhui.example.cn")
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = registry_export.records(a, what, registry_url)
    _write("--out", out_file, registry_export.render(what, form, found).encode())
    out.print(f"{what.value}: {len(found):,} records written to {escape(str(out_file))}")


# --- helpers ----------------------------------------------------------------------------------


def _uscc(text: str) -> str:
    """A unified social credit code as given, checked (its check character too).

    Raises:
        InputError: not one (the message never repeats what was given).
    """
    code = text.strip().upper()
    wrong = rules.uscc_refused(code)
    if wrong is not None:
        raise InputError(wrong)
    return code


def _batch_name(text: str) -> str:
    """A batch's id or a serial number in it, as given, when it can name one.

    Raises:
        InputError: it cannot (the message never repeats what was given).
    """
    given = text.strip()
    numbers = [given] if given.isascii() and given.isdigit() else []
    if not numbers:
        try:
            found = rules.parse_serial(given)
        except ValueError:
            numbers = ["not one"]
        else:
            numbers = [str(found.first), str(found.last)]
    if not all(n.isascii() and n.isdigit() and len(n) <= 18 for n in numbers):
        raise InputError("a batch is named by its id or a serial number")
    return given


def _outcome(done: Outcome) -> None:
    """The operation and its answer as stored (names and reasons are data, never markup)."""
    note = " (already done: the first answer)" if done.replayed else ""
    out.print(f"{done.kind} {done.operation}{note}")
    out.print(
        json.dumps(done.result, ensure_ascii=False, sort_keys=True, indent=2),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def _units(n: int) -> str:
    return f"{n:,} unit" if n == 1 else f"{n:,} units"


def _print_batch(b: BatchView) -> None:
    out.print(f"batch {b.id}: {b.serial}")
    out.print(
        f"methodology {b.methodology}, region {b.region}, vintage {b.vintage}; certified "
        f"{_china(b.certified_at)} (UTC+8) by {rules.EXCHANGES.get(b.exchange, b.exchange)}"
    )
    out.print(
        f"{_units(b.units)}, {b.buffer_units:,} withheld in its buffer ({b.buffer_bp} bp); "
        f"Merkle root {b.root} over {b.leaves:,} credits"
    )
    held = ", ".join(f"{b.held[h]:,} {h}" for h in rules.HOLDERS)
    out.print(f"units by holder: {held}")
    if b.drawn_g or b.shortfall_g:
        out.print(
            f"reversals drew {b.drawn_g:,} g from its buffer; {b.shortfall_g:,} g not covered"
        )


def _table(*names: str, title: str) -> Table:
    """A table whose values wrap when the terminal is narrow, never cut (serial numbers and
    certificate ids are read whole)."""
    return Table(*(Column(n, overflow="fold") for n in names), title=title)


def _china(moment: datetime) -> str:
    return (moment.astimezone(UTC) + china_time.OFFSET).strftime("%Y-%m-%d %H:%M")


def _plain(view: Any) -> dict[str, Any]:
    """A registry view as JSON-ready data."""
    found: dict[str, Any] = dataclasses.asdict(view)
    return found


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_moment))


def _moment(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(type(value).__name__)


def _write(option: str, path: Path, data: bytes, done: str = "") -> None:
    """Write a file the operator named, or say why not (exit 1)."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        _fail(f"{done}the file of {option} cannot be written: {exc.strerror or 'error'}")


def _fail(why: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(why)}")
    raise typer.Exit(1)
