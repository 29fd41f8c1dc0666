"""`puhui review`: the queue of held records (spec v1.1) from the command line. `list` shows what
waits (or what was decided) with why, `show` one record with what every source reported of the
same citizen around it, `decide` releases or rejects records with a reason, `expire` ends the
records whose corroboration window is over (now, or as of a given moment), and `rates` shows
how each platform's records fare under review. No identifier of a citizen is ever printed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from puhui.domain.errors import InputError
from puhui.domain.review import Decision
from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import admin, review_queue
from puhui.service.review_queue import CHINA, HELD_REASONS

review_app = typer.Typer(
    help="The review queue of held records: list, show, decide, expire, rates.",
    no_args_is_help=True,
)


@review_app.command("list")
def review_list(
    platform: Annotated[str | None, typer.Option("--platform", help="Platform code.")] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="Held for this reason: " + ", ".join(r.value for r in HELD_REASONS)
        ),
    ] = None,
    decided: Annotated[
        bool, typer.Option("--decided", help="The decided records instead of the open ones.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=review_queue.MAX_PAGE)] = 100,
    after: Annotated[int, typer.Option("--after", min=0, help="Records after this seq.")] = 0,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """List held records, oldest first, with why each was held."""
    state = review_queue.State.DECIDED if decided else review_queue.State.OPEN
    with application(db, key_file) as a:
        admin.check_ready(a)
        items = review_queue.queue(
            a, platform=platform, reason=reason, state=state, limit=limit, after=after
        )
    title = f"{len(items)} {'decided' if decided else 'open'} held records"
    table = Table("seq", "platform", "record", "scene", "start (UTC+8)", "g", "why", title=title)
    if decided:
        table.add_column("outcome")
    else:
        table.add_column("until (UTC+8)")
    for h in items:
        why = "\n".join(f"{f.code}: {f.why}" if f.why else f.code for f in h.findings)
        last = f"{h.outcome} ({h.outcome_reason}) by {h.decided_by}" if decided else _when(h.until)
        table.add_row(
            str(h.seq),
            escape(h.platform),
            escape(h.record_id),
            h.scene,
            _when(h.start),
            f"{h.grams:,}",
            escape(why),
            escape(last),
        )
    out.print(table)
    if len(items) == limit:
        out.print(f"more after seq {items[-1].seq}: --after {items[-1].seq}")


@review_app.command("show")
def review_show(
    seq: Annotated[int, typer.Argument(help="The held record's seq.", min=1)],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """One held record: why it was held and what every source reported around it."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        found = review_queue.item(a, seq)
    h = found.held
    amount = "" if h.amount is None else f"{h.amount} {h.unit}"
    out.print(
        f"record {h.seq}: {escape(h.platform)} {escape(h.record_id)} · {h.scene} in {h.region} · "
        f"{_when(h.start)}–{_when(h.end)} (UTC+8) · {amount}"
    )
    out.print(f"status {h.status}, {h.grams:,} g held at {_when(h.held_at)} (UTC+8)")
    if h.policy:
        out.print(f"policy {escape(h.policy)}, corroboration until {_when(h.until)} (UTC+8)")
    for f in h.findings:
        out.print(f"  {f.code}: {escape(f.why or f.means)}")
    if found.device_citizens is not None:
        out.print(
            f"  its device reported {found.device_citizens} citizens' behaviours within "
            f"{found.device_window_hours} h of it"
        )
    if h.corroborated_by is not None:
        by = h.corroborated_by
        out.print(f"corroborated by {escape(by.platform)} {escape(by.record_id)}")
    if h.decided_at is not None:
        note = f": {escape(h.note)}" if h.note else ""
        out.print(
            f"decided {_when(h.decided_at)} (UTC+8): {h.outcome} ({h.outcome_reason}) "
            f"by {escape(h.decided_by or '')}{note}"
        )
    table = Table(
        "platform", "record", "scene", "region", "start (UTC+8)", "end", "amount", "status",
        "reason", title="the citizen's records within 12 h, every platform",
    )  # fmt: skip
    for r in found.related:
        table.add_row(
            escape(r.platform),
            escape(r.record_id) + (" (duplicate of it)" if r.duplicate else ""),
            r.scene,
            r.region,
            _when(r.start),
            _when(r.end),
            "" if r.amount is None else f"{r.amount} {r.unit}",
            r.status,
            r.reason,
        )
    out.print(table)


@review_app.command("decide")
def review_decide(
    seqs: Annotated[list[int], typer.Argument(help="Seqs of the held records.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the decision).")],
    by: Annotated[str, typer.Option("--by", help="Who decides (kept with the decision).")],
    release: Annotated[bool, typer.Option("--release", help="Credit their grams.")] = False,
    reject: Annotated[
        bool, typer.Option("--reject", help="Give their grams back to the issuer.")
    ] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Release or reject held records, with a reason."""
    with application(db, key_file) as a:
        if release == reject:
            raise InputError("say --release or --reject (one of them)")
        admin.check_ready(a)
        decision = Decision.RELEASE if release else Decision.REJECT
        done = review_queue.decide(a, seqs, decision, by, reason)
    verb = "released" if release else "rejected"
    out.print(f"{verb}: {' '.join(map(str, done.decided)) or 'none'}")
    if done.skipped:
        out.print(f"skipped (decided already, or never held): {' '.join(map(str, done.skipped))}")


@review_app.command("expire")
def review_expire(
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Settle the timeouts as of this moment (ISO 8601; without an offset, China "
            "time); default now.",
        ),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """End the held records whose corroboration window is over, as their policies say."""
    with application(db, key_file) as a:
        moment = None if at is None else _moment(at)
        admin.check_ready(a)
        ended = review_queue.expire(a, moment)
    out.print(
        f"ended {len(ended)} held records" + (f": {' '.join(map(str, ended))}" if ended else "")
    )


@review_app.command("rates")
def review_rates(db: Db = None, key_file: KeyFile = None) -> None:
    """How each platform's records fare under review; flagged when reviewers reject too many."""
    with application(db, key_file) as a:
        admin.check_ready(a)
        rates = review_queue.rates(a)
    table = Table(
        "platform", "records", "held", "open", "corroborated", "released",
        "rejected on review", "not corroborated", "rejected share", "flag",
        title="held records per platform",
    )  # fmt: skip
    for column in table.columns[1:9]:
        column.justify = "right"
    for r in rates:
        share = "" if r.rejected_share is None else f"{r.rejected_share:.0%}"
        table.add_row(
            escape(r.platform),
            f"{r.records:,}",
            f"{r.held:,}",
            f"{r.open:,}",
            f"{r.corroborated:,}",
            f"{r.released:,}",
            f"{r.rejected_on_review:,}",
            f"{r.not_corroborated:,}",
            share,
            "FLAGGED" if r.flagged else "",
        )
    out.print(table)
    out.print(
        f"flagged: reviewers rejected {review_queue.FLAG_SHARE:.0%} or more of at least "
        f"{review_queue.FLAG_MIN_DECIDED} of its records they decided"
    )


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def _moment(text: str) -> datetime:
    """A moment given on the command line: ISO 8601, China time when it has no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--at {text!r} is not an ISO 8601 moment") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)
