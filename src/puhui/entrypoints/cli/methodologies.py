"""`puhui methodology`: the methodologies and emission factors puhui quantifies with. `list`
and `show` read the shipped catalogue; `explain` shows the full calculation of one stored
record, from its inputs and the factors found for it to the grams credited; `recompute`
computes a record's stored calculations again, bit for bit; `restate` restates the credits of
a corrected version, and `restatements` lists what was restated."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from puhui.entrypoints.cli.common import OPERATOR, Db, KeyFile, application, err, out
from puhui.service import queries, restatement

methodology_app = typer.Typer(help="Methodologies and emission factors.", no_args_is_help=True)


@methodology_app.command("list")
def methodology_list() -> None:
    """List methodology versions."""
    with application(None, None) as a:
        table = Table("methodology", "status", "in force", "jurisdiction", "scenes", "supersedes")
        for m in sorted(a.catalogue.methodologies, key=lambda m: (m.id, m.semver)):
            until = f" to {m.effective_to}" if m.effective_to else ""
            corrected = " (corrected: never selected)" if m.ref in a.catalogue.corrected else ""
            table.add_row(
                m.ref,
                f"{m.status}{corrected}",
                f"{m.effective_from}{until}",
                ", ".join(m.jurisdiction),
                ", ".join(m.scenes),
                (m.supersedes + (" (correction)" if m.retroactive else " (revision)"))
                if m.supersedes
                else "—",
            )
        out.print(table)


@methodology_app.command("show")
def methodology_show(ref: Annotated[str, typer.Argument(help="id@version or id.")]) -> None:
    """Show a methodology: formulas, parameters, caps, references."""
    with application(None, None) as a:
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
            if m.supersedes:
                kind = "a correction, retroactive" if m.retroactive else "a revision, forward"
                out.print(f"supersedes {m.superseded_ref} ({kind})")
            if m.factor_pins:
                out.print(f"pinned factors: {', '.join(m.factor_pins)}")
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
    """Show the full calculation of one record: inputs, factors with sources, fallback, rounding;
    then each restatement of it, with its calculation under the correcting version."""
    with application(db, key_file) as a:
        e = queries.explain(a, platform, record_id)
    if as_json:
        found = e.__dict__ if hasattr(e, "__dict__") else _asdict(e)
        found = {**found, "restated": [dataclasses.asdict(r) for r in e.restated]}
        out.print_json(json.dumps(_jsonable(found)))
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
    _formulas(tr, e.amount, e.computed_g)
    out.print(f"credited: {e.reduction_g} g" + (" (capped)" if "capped" in e.reason else ""))
    for r in e.restated:
        again = r.trace
        out.print(
            f"[bold]restated[/bold] {r.at.isoformat()} (restatement {r.restatement}): "
            f"methodology {r.methodology}"
        )
        for n in again["names"]:
            source = f"factor {n['factor_id']}" if n["factor_id"] else "parameter"
            out.print(f"  {n['name']} = {n['value']} {n['unit']}  [{n['evidence']}], {source}")
            out.print(f"      source: {n['source']}")
        _formulas(again, e.amount, r.computed_g)
        capped = " (capped)" if r.computed_g is not None and r.grams < r.computed_g else ""
        out.print(f"credited: {r.grams_before} g → {r.grams} g{capped}")


@methodology_app.command("recompute")
def methodology_recompute(
    record: Annotated[str, typer.Option("--record", help="PLATFORM:RECORD_ID of a stored record.")],
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Compute a record's stored calculation, and each restated one, again from its pinned
    methodology version and factor ids, and compare them bit for bit. Exit 1 when one differs."""
    platform, sep, record_id = record.partition(":")
    if not sep or not platform or not record_id:
        err.print("[red]error:[/red] --record is PLATFORM:RECORD_ID")
        raise typer.Exit(2)
    with application(db, key_file) as a:
        found = restatement.recompute(a, platform, record_id)
    table = Table("methodology", "factors", "stored per unit", "computed per unit",
                  "stored g", "computed g", "bit for bit")  # fmt: skip
    for r in found:
        table.add_row(
            r.methodology,
            "\n".join(f"{name}: {fid}" for name, fid in sorted(r.factors.items())) or "—",
            str(r.stored_per_unit),
            "—" if r.per_unit is None else str(r.per_unit),
            str(r.stored_g),
            "—" if r.grams is None else str(r.grams),
            "yes" if r.identical else f"NO {r.problem}".strip(),
        )
    out.print(table)
    if len(found) > 1:
        out.print("stored g: as credited, then as each restatement left it (caps applied)")
    if not all(r.identical for r in found):
        raise typer.Exit(1)


@methodology_app.command("restate")
def methodology_restate(
    methodology: Annotated[str, typer.Argument(help="The methodology's id.")],
    to: Annotated[str, typer.Option("--to", help="The version to restate to.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Restate every credit of the versions VERSION supersedes: computed again from its stored
    inputs, caps re-applied, and the difference posted per citizen (`restated` transfers; a
    certified credit's through its batch's buffer). Run it again to resume; it never posts
    twice."""
    with application(db, key_file) as a:
        done = restatement.restate(a, methodology, to, OPERATOR, dry_run)
    report = done.as_dict()
    if as_json:
        out.print_json(json.dumps(report))
        return
    head = "dry run, nothing changed: " if dry_run else ""
    out.print(
        f"{head}{report['methodology']} restates {', '.join(report['superseded'])}: "
        f"{report['credits']} credits of {report['citizens']} citizens change by "
        f"{report['delta_g']:+,} g ({report['recalculated']} recalculated)"
    )
    table = Table("region", "scene", "credits", "increased g", "decreased g")
    for p in report["by_place"]:
        table.add_row(p["region"], p["scene"], str(p["credits"]), f"{p['increased_g']:,}",
                      f"{p['decreased_g']:,}")  # fmt: skip
    out.print(table)
    out.print(
        f"posted {report['posted_g']:+,} g; shortfall {report['shortfall_g']:,} g "
        "(decreases an account or buffer did not hold)"
    )
    if report["waiting"]:
        out.print(
            f"{report['waiting']} citizens' scenes wait for held records to be decided: "
            "run it again then"
        )
    elif not dry_run:
        out.print("finished")


@methodology_app.command("restatements")
def methodology_restatements(db: Db = None, key_file: KeyFile = None) -> None:
    """List restatements with their totals."""
    with application(db, key_file) as a:
        found = restatement.restatements(a)
    table = Table("id", "to", "restates", "credits", "increased g", "decreased g", "posted g",
                  "shortfall g", "started", "finished")  # fmt: skip
    for r in found:
        table.add_row(
            str(r["id"]), r["methodology"], ", ".join(r["superseded"]), str(r["credits"]),
            f"{r['increased_g']:,}", f"{r['decreased_g']:,}", f"{r['posted_g']:+,}",
            f"{r['shortfall_g']:,}", str(r["started_at"])[:19],
            str(r["finished_at"])[:19] if r["finished_at"] else "resumable",
        )  # fmt: skip
    out.print(table)


def _formulas(trace: dict[str, Any], amount: Decimal | None, computed_g: int | None) -> None:
    """A calculation's BE, PE and ER per unit, and what the amount computes to."""
    out.print(f"BE per unit = {trace['baseline_formula']} = {trace['baseline_g']} g")
    out.print(f"PE per unit = {trace['project_formula']} = {trace['project_g']} g")
    out.print(f"ER per unit = max(0, BE − PE) = {trace['reduction_g']} g")
    if amount is not None:
        exact = amount * Decimal(trace["reduction_g"])
        out.print(
            f"ER = {amount} × {trace['reduction_g']} = {exact} g, rounded down: {computed_g} g"
        )


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
