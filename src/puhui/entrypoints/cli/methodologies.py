"""`puhui methodology`: the methodologies and emission factors puhui quantifies with. `list`
and `show` read the shipped catalogue; `explain` shows the full calculation of one stored
record, from its inputs and the factors found for it to the grams credited."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from puhui.entrypoints.cli.common import Db, KeyFile, application, err, out
from puhui.service import queries

methodology_app = typer.Typer(help="Methodologies and emission factors.", no_args_is_help=True)


@methodology_app.command("list")
def methodology_list() -> None:
    """List methodology versions."""
    with application(None, None) as a:
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
    with application(db, key_file) as a:
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
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
