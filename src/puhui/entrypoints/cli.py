"""`puhui`: the operator's command line. Each command parses, calls one use case, renders."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from puhui.bootstrap import App, bootstrap
from puhui.config import WORKERS_NICE_ENV, Settings
from puhui.domain import china_time, footprints
from puhui.domain.errors import PuhuiError
from puhui.service import admin, certificates, credentials, ledger, oversight, queries, wallet
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
programme_app = typer.Typer(help="Points programmes.", no_args_is_help=True)
reward_app = typer.Typer(help="The rewards catalogue.", no_args_is_help=True)
jobs_app = typer.Typer(help="Scheduled jobs.", no_args_is_help=True)
certificate_app = typer.Typer(help="Retirement and tree certificates.", no_args_is_help=True)
staff_app = typer.Typer(
    help="API tokens of the exchange's operators and regulators.", no_args_is_help=True
)
app.add_typer(platform_app, name="platform")
app.add_typer(staff_app, name="staff")
app.add_typer(account_app, name="account")
app.add_typer(ledger_app, name="ledger")
app.add_typer(methodology_app, name="methodology")
app.add_typer(programme_app, name="programme")
app.add_typer(reward_app, name="reward")
app.add_typer(jobs_app, name="jobs")
app.add_typer(certificate_app, name="certificate")

# What puhui prints is data (ids, codes, reasons): no `:name:` of it becomes an emoji.
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

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
    workers_nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="With 2 workers or more, how much lower their scheduling priority is than the "
            "settlement process's (a nice increment): it settles every worker's submissions "
            "one group at a time, and should not wait for a core behind them.",
        ),
    ] = 5,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs)."""
    import contextlib
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
    with contextlib.ExitStack() as stack:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # The workers and the settlement process add their metrics up here; removed when
            # the server stops.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="puhui-metrics-")
            )
        _start_settler(stack, settings)
        if workers > 1:
            # Taken by each worker process as it starts (`entrypoints.asgi`). A single worker
            # runs in this process, which starts the settlement process again should it stop:
            # left alone, so that a new settlement process does not inherit a worker's priority.
            os.environ[WORKERS_NICE_ENV] = str(workers_nice)
        out.print(f"puhui API on http://{host}:{port}  (docs http://{host}:{port}/docs)")
        uvicorn.run(
            "puhui.entrypoints.asgi:application",
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(),
            access_log=False,
        )


def _start_settler(stack: contextlib.ExitStack, settings: Settings) -> None:
    """Start the settlement process (`entrypoints.settler`) for the server's workers, watched
    and stopped with the server; the workers find it through the environment."""
    import tempfile

    from puhui.entrypoints import settler

    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="puhui-settler-"))
    process = settler.SettlementProcess(
        settings.database_url, str(settings.key_file.resolve()), folder
    )
    stack.callback(process.stop)
    os.environ[settler.ADDRESS_ENV] = process.address
    os.environ[settler.KEY_ENV] = process.authkey.hex()


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
        f"in {report.transfers:,} ledger transfers"
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
    wide: Annotated[
        bool | None,
        typer.Option(
            "--wide/--narrow",
            help="Show each record id and methodology (default: when the terminal has room).",
        ),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Show a citizen's balance and history (the identifier is pseudonymised, never stored):
    when each behaviour happened and when it was booked, in China time."""
    with _app(db, key_file) as a:
        view = queries.account(a, subject, limit)
        held = wallet.holdings(a, view.pseudonym)
    out.print(f"account citizen:{view.pseudonym[:16]}…  balance {view.balance_g:,} g CO2e")
    if held.retired_g:
        out.print(f"retired against own footprint: {held.retired_g:,} g CO2e")
    for programme, points in held.points.items():
        out.print(f"points ({programme}): {points:,}")
    wide = out.width >= WIDE_HISTORY if wide is None else wide
    columns = [
        Column("entry", justify="right"),
        Column("happened"),
        Column("booked"),
        Column("kind"),
        Column("grams", justify="right"),
        Column("scene"),
        Column("platform"),
    ]
    if wide:
        columns += [Column("record"), Column("methodology")]
    for column in columns:
        column.overflow = "fold"  # a narrow terminal wraps a value, never cuts it
    table = Table(
        *columns,
        title="history, newest first (China time, UTC+8)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for line in view.history:
        cells = [
            str(line.entry_id),
            "" if line.happened is None else _china(line.happened, "%Y-%m-%d %H:%M"),
            _china(line.at, "%Y-%m-%d"),
            line.kind,
            f"{line.amount_g:+,d}",
            line.scene,
            line.platform,
        ]
        table.add_row(*cells, *([line.record_id, line.methodology] if wide else []))
    out.print(table)
    if not wide and view.history:
        out.print("record ids and methodologies: --wide (`puhui methodology explain` for each)")


# Columns a terminal needs for the history with its record ids and methodologies.
WIDE_HISTORY = 118


def _china(moment: datetime, form: str) -> str:
    """A moment as people in China read it."""
    return (moment.astimezone(UTC) + china_time.OFFSET).strftime(form)


Key = Annotated[
    str,
    typer.Option("--key", help="Idempotency key: the same key again returns the first answer."),
]
OPERATOR = "operator:cli"


@account_app.command("redeem")
def account_redeem(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    reward: Annotated[str, typer.Argument(help="Reward code.")],
    key: Key,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Redeem a reward for a citizen, paid from their grams or points."""
    with _app(db, key_file) as a:
        outcome = wallet.redeem(a, queries.pseudonym_of(a, subject), reward, key, OPERATOR)
    _print_outcome(outcome)


@account_app.command("retire")
def account_retire(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    key: Key,
    grams: Annotated[
        int | None, typer.Option(help="Grams to retire (default: the footprint's grams).")
    ] = None,
    footprint: Annotated[
        str | None, typer.Option(help=f"Footprint offset: {', '.join(footprints.KINDS)}.")
    ] = None,
    amount: Annotated[
        str | None, typer.Option(help="Of the footprint: km, or kWh for electricity.")
    ] = None,
    region: Annotated[str, typer.Option(help="GB/T 2260 code, for electricity.")] = "CN",
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Retire grams against a citizen's own footprint, for good, with a certificate."""
    with _app(db, key_file) as a:
        declared = None
        if footprint is not None:
            declared = footprints.compute(a.catalogue, footprint, Decimal(amount or "0"), region)
            for line in declared.explanation():
                out.print(line)
        if grams is None:
            if declared is None:
                raise typer.BadParameter("give --grams or a --footprint")
            grams = declared.grams
        outcome = wallet.retire(
            a,
            queries.pseudonym_of(a, subject),
            grams,
            key,
            OPERATOR,
            footprint=declared.as_dict() if declared else None,
        )
    _print_outcome(outcome)


@account_app.command("give")
def account_give(
    subject: Annotated[str, typer.Argument(help="The giver's mobile or ID number.")],
    to: Annotated[str, typer.Argument(help="The receiver's mobile or ID number.")],
    amount: Annotated[int, typer.Argument(help="Grams, or points with --programme.")],
    key: Key,
    programme: Annotated[str | None, typer.Option(help="Give this programme's points.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Give grams or points from one citizen to another."""
    with _app(db, key_file) as a:
        outcome = wallet.transfer(
            a,
            queries.pseudonym_of(a, subject),
            queries.pseudonym_of(a, to),
            amount,
            key,
            OPERATOR,
            programme=programme,
        )
    _print_outcome(outcome)


@account_app.command("operations")
def account_operations(
    subject: Annotated[str, typer.Argument(help="Mobile number or resident ID number.")],
    limit: Annotated[int, typer.Option(help="Operations to show.")] = 20,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """A citizen's operations (redemptions, retirements, gifts, reversals), newest first."""
    with _app(db, key_file) as a:
        done = wallet.operations(a, queries.pseudonym_of(a, subject), limit)
    table = Table("operation", "at (UTC)", "kind", "by", "result")
    for o in done:
        table.add_row(
            str(o.operation),
            o.at.isoformat(timespec="seconds"),
            o.kind,
            o.actor,
            _summary(o.kind, o.result),
        )
    out.print(table)


@ledger_app.command("reverse")
def ledger_reverse(
    entry: Annotated[int, typer.Argument(help="Id of the entry to reverse.")],
    key: Key,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Reverse a credit (with its points), a redemption or a gift by its mirror entry."""
    with _app(db, key_file) as a:
        outcome = wallet.reverse(a, entry, key, OPERATOR, reason)
    _print_outcome(outcome)


def _summary(kind: str, r: dict[str, Any]) -> str:
    """One line of what an operation did."""
    if kind == "redeem":
        got = r.get("coupon_code") or (f"tree #{r['tree_number']}" if "tree_number" in r else "")
        return (
            f"{r['reward']} ({r['kind']}{': ' + got if got else ''}) for {r['price']} {r['unit']}"
        )
    if kind == "retire":
        offset = r.get("footprint")
        what = f" offsetting {offset['kind']} {offset['amount']} {offset['unit']}" if offset else ""
        return f"{r['retired_g']} g retired{what}; certificate {r['certificate']}"
    if kind == "transfer":
        return f"gave {r['amount']} {r['unit']}" + (
            f" ({r['programme']})" if r["programme"] else ""
        )
    return f"reversed entry {r['reversed']}: {r['reason']}"


def _print_outcome(outcome: wallet.Outcome) -> None:
    note = " (already done: the first answer)" if outcome.replayed else ""
    out.print(f"{outcome.kind} {outcome.operation}{note}")
    out.print(json.dumps(outcome.result, ensure_ascii=False, sort_keys=True, indent=2))


@programme_app.command("add")
def programme_add(
    code: str,
    points_per_kg: Annotated[
        str, typer.Option(help="Points per kg CO2e credited (up to six decimals).")
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    expiry_days: Annotated[int | None, typer.Option(help="Points expire after.")] = None,
    platform: Annotated[
        str | None, typer.Option(help="Run by this platform: only its records earn points.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Credits from this time on earn points (default: now).")
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Define how credits earn points (`puhui jobs run` awards them)."""
    with _app(db, key_file) as a:
        p = wallet.add_programme(
            a,
            code,
            name or code,
            _decimal(points_per_kg),
            expiry_days,
            platform,
            starts_at=_moment(since),
        )
    out.print(f"programme {p.code}: {p.points_per_kg} points per kg from {p.starts_at:%Y-%m-%d}")


@programme_app.command("list")
def programme_list(db: Db = None, key_file: KeyFile = None) -> None:
    """Every points programme."""
    with _app(db, key_file) as a:
        programmes = wallet.list_programmes(a)
    table = Table("code", "name", "platform", "points per kg", "expiry days", "since")
    for p in programmes:
        table.add_row(
            p.code,
            p.name,
            p.platform or "(exchange)",
            str(p.points_per_kg),
            str(p.expiry_days or "never"),
            p.starts_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@reward_app.command("add")
def reward_add(
    code: str,
    kind: Annotated[str, typer.Option(help="coupon, tree or donation.")],
    issuer: Annotated[str, typer.Option(help="Merchant, platform or project owner.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    price_g: Annotated[int | None, typer.Option(help="Price in grams CO2e.")] = None,
    price_points: Annotated[int | None, typer.Option(help="Price in points.")] = None,
    programme: Annotated[str | None, typer.Option(help="Whose points pay for it.")] = None,
    stock: Annotated[int | None, typer.Option(help="Trees or donations available.")] = None,
    limit: Annotated[int | None, typer.Option(help="Redemptions per citizen.")] = None,
    project: Annotated[str | None, typer.Option(help="Planting or donation project.")] = None,
    valid_from: Annotated[str | None, typer.Option(help="RFC 3339 time with offset.")] = None,
    valid_to: Annotated[str | None, typer.Option(help="RFC 3339 time with offset.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Put a reward in the catalogue (a coupon's stock is the codes uploaded for it)."""
    with _app(db, key_file) as a:
        r = wallet.add_reward(
            a,
            code,
            name or code,
            kind,
            issuer,
            price_g=price_g,
            price_points=price_points,
            programme=programme,
            stock=stock,
            per_citizen_limit=limit,
            valid_from=_moment(valid_from),
            valid_to=_moment(valid_to),
            project=project,
        )
    out.print(f"reward {r.code}: {r.kind} for {r.price} {r.unit}")


@reward_app.command("codes")
def reward_codes(
    code: str,
    file: Annotated[Path, typer.Argument(help="Text file, one coupon code a line.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Add coupon codes to a coupon's pool (each handed out once)."""
    with _app(db, key_file) as a:
        lines = file.read_text(encoding="utf-8").splitlines()
        added = wallet.add_codes(a, code, [line for line in lines if line.strip()])
        r = wallet.get_reward(a, code)
    out.print(f"{added} codes added; {r.remaining} of {r.stock} left")


@reward_app.command("list")
def reward_list(db: Db = None, key_file: KeyFile = None) -> None:
    """The catalogue."""
    with _app(db, key_file) as a:
        rewards = wallet.list_rewards(a)
    table = Table("code", "kind", "issuer", "price", "left", "per citizen", "window")
    for r in rewards:
        table.add_row(
            r.code,
            r.kind,
            r.issuer,
            f"{r.price} {r.unit}" + (f" ({r.programme})" if r.programme else ""),
            "unlimited" if r.remaining is None else f"{r.remaining}/{r.stock}",
            str(r.per_citizen_limit or "-"),
            f"{r.valid_from or ''} – {r.valid_to or ''}",
        )
    out.print(table)


@jobs_app.command("run")
def jobs_run(db: Db = None, key_file: KeyFile = None) -> None:
    """Award points for new credits and expire points past their validity (idempotent)."""
    with _app(db, key_file) as a:
        admin.check_ready(a)
        report = wallet.run_jobs(a)
    out.print(
        f"awarded {report.awarded_points} points for {report.awarded_credits} credits; "
        f"expired {report.expired_points} points in {report.expired_accounts} accounts"
    )


@certificate_app.command("show")
def certificate_show(
    certificate: Annotated[str, typer.Argument(help="Certificate id, PH-…")],
    html: Annotated[Path | None, typer.Option(help="Also write it as an HTML page.")] = None,
    pdf: Annotated[Path | None, typer.Option(help="Also write it as a PDF file.")] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Verify a certificate and show (or write) it."""
    with _app(db, key_file) as a:
        found = wallet.verify_certificate(a, certificate)
        if html is not None:
            html.write_text(certificates.html(found), encoding="utf-8")
        if pdf is not None:
            pdf.write_bytes(certificates.pdf(found))
    out.print(
        f"{found.certificate}: {found.kind} certificate issued {found.issued_at:%Y-%m-%d %H:%M} UTC"
    )
    out.print(json.dumps(found.result, ensure_ascii=False, sort_keys=True, indent=2))


def _decimal(value: str) -> Decimal:
    try:
        return Decimal(value)
    except ArithmeticError:
        raise typer.BadParameter(f"not a number: {value!r}") from None


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an RFC 3339 time: {value!r}") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"give the offset, e.g. {value}+08:00")
    return moment.astimezone(UTC)


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
        f"{totals.transfers} transfers, {totals.accounts} accounts, {totals.issued_g} g issued"
    )
    if not violations:
        out.print(f"ledger sound: {len(ledger.CHECKS)} checks passed")
        return
    for v in violations:
        what = ledger.CHECKS[v.check]
        examples = escape(", ".join(v.examples))  # stored values, not markup
        err.print(f"[red]{v.check}[/red]: {v.count} — {escape(what)}; e.g. {examples}")
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
