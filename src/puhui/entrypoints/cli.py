"""`puhui`: the operator's command line. Each command parses, calls one use case, renders."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import PuhuiError
from puhui.service import admin, credentials, ledger, oversight, queries
from puhui.service import ingest as ingest_service

app = typer.Typer(
    help="puhui: clearing platform for carbon inclusion (碳普惠).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
platform_app = typer.Typer(help="Member platforms.", no_args_is_help=True)
account_app = typer.Typer(help="Personal carbon accounts.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
methodology_app = typer.Typer(help="Methodologies and emission factors.", no_args_is_help=True)
staff_app = typer.Typer(
    help="API tokens of the exchange's operators and regulators.", no_args_is_help=True
)
app.add_typer(platform_app, name="platform")
app.add_typer(staff_app, name="staff")
app.add_typer(account_app, name="account")
app.add_typer(ledger_app, name="ledger")
app.add_typer(methodology_app, name="methodology")

out = Console()
err = Console(stderr=True)

Db = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: PUHUI_DATABASE_URL, else sqlite:///puhui.db)."
    ),
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file", help="Subject key file (default: PUHUI_KEY_FILE, else beside the database)."
    ),
]


@contextmanager
def _app(db: str | None, key_file: Path | None) -> Iterator[App]:
    instance = bootstrap(Settings.load(db, key_file))
    try:
        yield instance
    except PuhuiError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        instance.close()


@app.command()
def init(db: Db = None, key_file: KeyFile = None) -> None:
    """Create or upgrade the database, and create the subject key if there is none."""
    with _app(db, key_file) as a:
        report = admin.init(a)
        made = "created" if report.key_created else "kept"
        out.print(f"database at revision {report.revision}; subject key {made}: {report.key_file}")


@platform_app.command("add")
def platform_add(
    code: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Register a member platform and issue its API credentials (shown once)."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        info = admin.add_platform(a, code, name)
        issued = credentials.issue(a, info.code)
    out.print(f"platform {info.code} registered ({info.name})")
    _print_credentials(issued)


@platform_app.command("rotate-key")
def platform_rotate_key(code: str, db: Db = None, key_file: KeyFile = None) -> None:
    """Issue new API credentials for a platform; its previous key stops working at once."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        issued = credentials.issue(a, code)
    _print_credentials(issued)


def _print_credentials(issued: credentials.Credentials) -> None:
    out.print(f"API key id: {issued.key_id}")
    out.print(f"API secret: {issued.secret}")
    out.print("The secret is shown only now: hand it to the platform over a safe channel.")


@staff_app.command("add")
def staff_add(
    name: Annotated[str, typer.Argument(help="Who holds the token (a person or a system).")],
    role: Annotated[oversight.Role, typer.Option(help="What the token may read.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Issue an API token to an operator or a regulator (shown once)."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        issued = oversight.issue_staff_token(a, name, role)
    out.print(f"{issued.role} token for {issued.name}: {issued.token}")
    out.print("The token is shown only now; send it as `Authorization: Bearer <token>`.")


@staff_app.command("revoke")
def staff_revoke(name: str, db: Db = None, key_file: KeyFile = None) -> None:
    """Revoke every token of a holder."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        n = oversight.revoke_staff_tokens(a, name)
    out.print(f"{n} token(s) of {name} revoked")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import tempfile

    import uvicorn

    from puhui.entrypoints.observability import log_config

    with _app(db, key_file) as a:
        admin.check_ready(a)
        settings = a.settings
    # The workers are separate processes: they find the database and key in the environment,
    # and add their metrics up in a shared folder.
    os.environ["PUHUI_DATABASE_URL"] = settings.database_url
    os.environ["PUHUI_KEY_FILE"] = str(settings.key_file.resolve())
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="puhui-metrics-")
    out.print(f"puhui API on http://{host}:{port}  (docs http://{host}:{port}/docs)")
    uvicorn.run(
        "puhui.entrypoints.asgi:application",
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(),
        access_log=False,
    )


@platform_app.command("list")
def platform_list(
    codes: Annotated[
        bool, typer.Option("--codes", help="Print only the codes, one a line.")
    ] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """List member platforms with their records by status and the grams credited."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        platforms = admin.list_platforms(a)
    if codes:
        for p in platforms:
            print(p.code)
        return
    table = Table("code", "name", "credited", "duplicate", "rejected", "credited g")
    for col in table.columns[2:]:
        col.justify = "right"
    for p in platforms:
        table.add_row(
            p.code,
            p.name,
            f"{p.credited:,}",
            f"{p.duplicate:,}",
            f"{p.rejected:,}",
            f"{p.credited_g:,}",
        )
    out.print(table)


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="JSON Lines, CSV or Parquet files.")],
    platform: Annotated[str, typer.Option("--platform", help="Submitting platform's code.")],
    receipts: Annotated[
        Path | None, typer.Option("--receipts", help="Write one receipt per record to this CSV.")
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Read, check, quantify, deduplicate and credit a platform's files."""
    with (
        _app(db, key_file) as a,
        ingest_service.receipts_csv(receipts) as sink,
        _progress(files) as step,
    ):
        report = ingest_service.ingest_files(a, platform, files, sink=sink, progress=step)
    _print_report(report)


@contextmanager
def _progress(files: list[Path]) -> Iterator[Callable[[int], None] | None]:
    if not out.is_terminal:
        yield None
        return
    total = sum(_count_records(p) for p in files)
    columns = (
        TextColumn("ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task("ingest", total=total or None)
        yield lambda n: bar.advance(task, n)


def _count_records(path: Path) -> int:
    """Records in a file, for the progress bar (lines for text files, metadata for Parquet)."""
    if not path.is_file():
        return 0
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
    return max(lines - (path.suffix.lower() == ".csv"), 0)


def _print_report(report: ingest_service.IngestReport) -> None:
    table = Table("status", "records", title=f"{report.records} records")
    for status in ("credited", "duplicate", "rejected"):
        table.add_row(status, str(report.by_status.get(status, 0)))
    out.print(table)
    if report.by_reason:
        reasons = Table("reason", "records")
        for reason, count in report.by_reason.most_common():
            reasons.add_row(reason, str(count))
        out.print(reasons)
    out.print(
        f"credited {report.credited_g:,} g CO2e ({report.credited_g / 1_000_000:.3f} t) "
        f"in {report.entries:,} ledger entries"
    )
    if report.replays:
        out.print(
            f"{report.replays:,} records were received before: their receipts are returned "
            "again and nothing is credited twice"
        )


@account_app.command("show")
def account_show(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    limit: Annotated[int, typer.Option(help="History lines to show.")] = 20,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Show a citizen's balance and history (the identifier is pseudonymised, never stored)."""
    with _app(db, key_file) as a:
        view = queries.account(a, subject, limit)
    out.print(f"account citizen:{view.pseudonym[:16]}…  balance {view.balance_g} g CO2e")
    table = Table(
        "entry", "at (UTC)", "kind", "grams", "platform", "record", "scene", "methodology"
    )
    for line in view.history:
        table.add_row(
            str(line.entry_id),
            line.at.isoformat(timespec="seconds"),
            line.kind,
            f"{line.amount_g:+d}",
            line.platform,
            line.record_id,
            line.scene,
            line.methodology,
        )
    out.print(table)


@app.command()
def receipts(
    platform: Annotated[str, typer.Option("--platform", help="Platform code.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="CSV file (default: stdout).")
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Export every stored receipt of a platform as CSV."""
    fields = ("platform", "record_id", "status", "reason", "reduction_g", "methodology", "detail")
    with _app(db, key_file) as a:
        target = out_file.open("w", newline="", encoding="utf-8") if out_file else sys.stdout
        try:
            writer = csv.DictWriter(target, fieldnames=fields)
            writer.writeheader()
            for row in queries.receipts(a, platform):
                writer.writerow(row)
        finally:
            if out_file:
                target.close()


@ledger_app.command("verify")
def ledger_verify(db: Db = None, key_file: KeyFile = None) -> None:
    """Re-check every ledger invariant; exit 1 if any is broken."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        violations = ledger.verify(a)
        totals = ledger.totals(a)
    out.print(
        f"{totals.entries} entries, {totals.postings} postings, {totals.accounts} accounts, "
        f"{totals.issued_g} g issued"
    )
    if not violations:
        out.print(f"ledger sound: {len(ledger.CHECKS)} checks passed")
        return
    for v in violations:
        what = ledger.CHECKS[v.check][0]
        err.print(f"[red]{v.check}[/red]: {v.count} — {what}; e.g. {', '.join(v.examples)}")
    raise typer.Exit(1)


@methodology_app.command("list")
def methodology_list() -> None:
    """List methodology versions."""
    with _app(None, None) as a:
        table = Table("methodology", "status", "in force", "jurisdiction", "scenes")
        for m in a.catalogue.methodologies:
            until = f" to {m.effective_to}" if m.effective_to else ""
            table.add_row(
                m.ref,
                m.status,
                f"{m.effective_from}{until}",
                ", ".join(m.jurisdiction),
                ", ".join(m.scenes),
            )
        out.print(table)


@methodology_app.command("show")
def methodology_show(ref: Annotated[str, typer.Argument(help="id@version or id.")]) -> None:
    """Show a methodology: formulas, parameters, caps, references."""
    with _app(None, None) as a:
        matches = [m for m in a.catalogue.methodologies if ref in (m.ref, m.id)]
        if not matches:
            err.print(f"[red]error:[/red] no methodology {ref}")
            raise typer.Exit(1)
        for m in matches:
            out.print(f"[bold]{m.ref}[/bold]  {m.title} / {m.title_zh}")
            out.print(
                f"issuer: {m.issuer}; status: {m.status}; official code: {m.official_code or '—'}"
            )
            out.print(
                f"in force from {m.effective_from}"
                + (f" to {m.effective_to}" if m.effective_to else "")
            )
            out.print(f"jurisdiction: {', '.join(m.jurisdiction)}")
            if m.description:
                out.print(m.description)
            table = Table("scene", "unit", "BE per unit", "PE per unit", "caps")
            for rule in m.scenes.values():
                caps = "; ".join(
                    f"{c.period}: "
                    + ", ".join(
                        x
                        for x in (
                            f"{c.max_g} g" if c.max_g else "",
                            f"{c.max_count} records" if c.max_count else "",
                        )
                        if x
                    )
                    for c in rule.caps
                )
                table.add_row(
                    rule.scene, rule.unit, rule.baseline.source, rule.project.source, caps or "—"
                )
            out.print(table)
            if m.parameters:
                params = Table("parameter", "value", "unit", "evidence", "source")
                for p in m.parameters.values():
                    params.add_row(p.name, str(p.value), p.unit, p.evidence, p.source)
                out.print(params)
            for reference in m.references:
                out.print(f"  · {reference}")


@methodology_app.command("explain")
def methodology_explain(
    record_id: Annotated[str, typer.Argument(help="The record's id at its platform.")],
    platform: Annotated[str, typer.Option("--platform", help="Platform code.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Show the full calculation of one record: inputs, factors with sources, fallback, rounding."""
    with _app(db, key_file) as a:
        e = queries.explain(a, platform, record_id)
    if as_json:
        out.print_json(json.dumps(_jsonable(e.__dict__ if hasattr(e, "__dict__") else _asdict(e))))
        return
    out.print(
        f"[bold]{e.platform} / {e.record_id}[/bold]: {e.status}"
        + (f" ({e.reason})" if e.reason else "")
    )
    out.print(
        f"scene {e.scene}, region {e.region}"
        + (f", material {e.material}" if e.material else "")
        + (f", started {e.start.isoformat()}" if e.start else "")
    )
    if e.trace is None:
        out.print("no calculation: the record was rejected before quantification")
        return
    tr = e.trace
    out.print(
        f"methodology {tr['methodology']}; amount {e.amount} {e.unit} (rounded down to 0.001)"
    )
    for n in tr["names"]:
        out.print(f"  {n['name']} = {n['value']} {n['unit']}  [{n['evidence']}]")
        if n["factor_id"]:
            place = f"{n['region_asked']} → {n['region_used']} ({n['region_level']})"
            out.print(f"      factor {n['factor_id']}, region {place}")
        else:
            out.print("      parameter of the methodology")
        out.print(f"      source: {n['source']}")
        if n["derivation"]:
            out.print(f"      derivation: {n['derivation']}")
    out.print(f"BE per unit = {tr['baseline_formula']} = {tr['baseline_g']} g")
    out.print(f"PE per unit = {tr['project_formula']} = {tr['project_g']} g")
    out.print(f"ER per unit = max(0, BE − PE) = {tr['reduction_g']} g")
    if e.amount is not None:
        exact = e.amount * Decimal(tr["reduction_g"])
        out.print(
            f"ER = {e.amount} × {tr['reduction_g']} = {exact} g, rounded down: {e.computed_g} g"
        )
    out.print(f"credited: {e.reduction_g} g" + (" (capped)" if "capped" in e.reason else ""))


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _jsonable(value: Any) -> Any:
    from datetime import datetime
    from decimal import Decimal

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
